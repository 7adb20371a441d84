import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceAccessChecks } from '../../../src/controller/source-access.ts';
import { describeVerbOn } from '../../../src/api/peer-permissions.ts';

test('the sending VMIM always; the source VM as sourceAfterCutover finishes it', () => {
  const asked = (mode: 'Stop' | 'Delete' | 'Keep') => sourceAccessChecks('vms', mode).map((q) => `${q.namespace}: ${describeVerbOn(q)}`);
  const vmim = ['vms: create virtualmachineinstancemigrations.kubevirt.io', 'vms: delete virtualmachineinstancemigrations.kubevirt.io'];
  assert.deepEqual(asked('Stop'), [...vmim, 'vms: patch virtualmachines.kubevirt.io']);
  assert.deepEqual(asked('Delete'), [...vmim, 'vms: delete virtualmachines.kubevirt.io']);
  assert.deepEqual(asked('Keep'), vmim);
});
