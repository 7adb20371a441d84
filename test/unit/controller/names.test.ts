// Names the WanMigration controller derives from a WanMigration: valid and within their limits
// for the longest legal WanMigration name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LABEL_VALUE_MAX } from '../../../src/api/names.ts';
import { migrationNames } from '../../../src/controller/names.ts';
import { ownedAnnotations, ownedLabels } from '../../../src/controller/target-objects.ts';
import { wm } from './fixtures.ts';

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const longest = (fill: string) => [fill.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');

test('owned labels and VMIM names of a 253-character WanMigration are valid label values', () => {
  const m = wm();
  m.metadata.name = longest('m');
  for (const [k, value] of Object.entries(ownedLabels(m))) {
    assert.ok(value.length <= LABEL_VALUE_MAX, `${k}=${value}`);
    assert.match(value, LABEL_VALUE, k);
  }
  const n = migrationNames(m);
  for (const name of [n.sourceVMIM, n.targetVMIM]) {
    // KubeVirt copies a VMIM's name into the label kubevirt.io/migration-name.
    assert.ok(name.length <= LABEL_VALUE_MAX, name);
    assert.match(name, SUBDOMAIN);
  }
  assert.notEqual(n.sourceVMIM, n.targetVMIM);
  // The full name travels in an annotation (no length limit there), for the VMIM -> WanMigration mapping.
  assert.equal(ownedAnnotations(m)['cloudnet.io/migration-name'], m.metadata.name);
  // Short names keep the names they always had.
  assert.deepEqual(migrationNames(wm()), { migrationID: m.metadata.uid, sourceVMIM: 'mig-send-0123abcd00', targetVMIM: 'mig-recv-0123abcd00' });
});
