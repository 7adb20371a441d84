import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decentralizedGate, gateOffMessage } from '../../../src/controller/feature-gate.ts';

test('DecentralizedLiveMigration: listed → on; disabled → off; unlisted → off on 1.7, Beta default on ≥ 1.10', () => {
  assert.deepEqual(decentralizedGate({ featureGates: ['DecentralizedLiveMigration'], version: 'v1.7.0' }), { enabled: true, how: 'listed' });
  assert.deepEqual(decentralizedGate({ featureGates: [], version: 'v1.7.0' }), { enabled: false, how: 'not-listed' });
  assert.deepEqual(decentralizedGate({ version: 'v1.9.2' }), { enabled: false, how: 'not-listed' });
  assert.deepEqual(decentralizedGate({}), { enabled: false, how: 'not-listed' });
  assert.deepEqual(decentralizedGate({ version: 'v1.10.0' }), { enabled: true, how: 'beta-default' });
  assert.deepEqual(decentralizedGate({ version: 'v2.0.0-rc.1' }), { enabled: true, how: 'beta-default' });
  assert.deepEqual(decentralizedGate({ version: 'v1.10.0', disabledFeatureGates: ['DecentralizedLiveMigration'] }), { enabled: false, how: 'disabled' });
  // Explicit enable wins over explicit disable, as in KubeVirt's IsEnabled.
  assert.equal(decentralizedGate({ featureGates: ['DecentralizedLiveMigration'], disabledFeatureGates: ['DecentralizedLiveMigration'] }).enabled, true);
});

test('the message names the cluster, the CR and the exact field to change', () => {
  const m = gateOffMessage('target', 'kubevirt/kubevirt', 'not-listed', 'v1.7.0');
  assert.match(m, /target cluster/);
  assert.match(m, /spec\.configuration\.developerConfiguration\.featureGates of KubeVirt kubevirt\/kubevirt/);
  assert.match(gateOffMessage('source', 'kubevirt/kubevirt', 'disabled', 'v1.10.0'), /disabledFeatureGates/);
});
