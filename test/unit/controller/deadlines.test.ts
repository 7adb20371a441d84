// Deadlines that scale with the data: derived once at the start, shown in status, and used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveSpec } from '../../../src/api/wanmigration.ts';
import { deriveDeadlines } from '../../../src/controller/phases/deadlines.ts';
import { quantityBytes } from '../../../src/api/quantity.ts';
import { plan } from '../../../src/controller/phases/plan.ts';
import { inPhase, obs, T0, wm } from './fixtures.ts';

const GiB = 1024 ** 3;
const MBIT100 = 100e6 / 8;

test('a 50 GiB disk at 100 Mbit/s: KubeVirt mode gives the memory step the disks\' WAN time, not 30 min', () => {
  const d = deriveDeadlines(resolveSpec({ vmName: 'v', targetSite: 's', targetNamespace: 'n' }), { memoryBytes: 4 * GiB, diskBytes: 50 * GiB, bandwidthBps: MBIT100, bandwidthSource: 'measured' });
  // KubeVirt allows 150 s × 54 GiB = 8100 s; the WAN needs ⌈2 × 54 GiB / 12.5 MB/s⌉ + 120 s = 9398 s.
  assert.equal(d.memorySeconds, 9398);
  assert.equal(d.storageSeconds, 3600);
  assert.match(d.basis, /memory 4096 MiB, disks 51200 MiB, 100\.0 Mbit\/s measured/);
});

test('pre-copied and relayed disks stay off the WAN in the memory step; the pre-copy gets their WAN time', () => {
  const d = deriveDeadlines(resolveSpec({ vmName: 'v', targetSite: 's', targetNamespace: 'n', storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true } }),
    { memoryBytes: 4 * GiB, diskBytes: 50 * GiB, bandwidthBps: MBIT100 });
  assert.equal(d.memorySeconds, 8100, 'KubeVirt\'s own 150 s/GiB still bounds it (its mirror reads every block)');
  assert.equal(d.storageSeconds, 13185);
});

test('small VMs and unknown bandwidth keep the former defaults as the floor', () => {
  const d = deriveDeadlines(resolveSpec({ vmName: 'v', targetSite: 's', targetNamespace: 'n' }), { memoryBytes: 512 * 2 ** 20, diskBytes: GiB });
  assert.deepEqual([d.memorySeconds, d.storageSeconds], [1800, 3600]);
  assert.match(d.basis, /no bandwidth known/);
});

test('quantities', () => {
  assert.equal(quantityBytes('512Mi'), 512 * 2 ** 20);
  assert.equal(quantityBytes('1G'), 1e9);
  assert.equal(quantityBytes('bogus'), undefined);
});

test('the start fixes status.deadlines; the phase deadline uses them and is shown', () => {
  const sizing = { memoryBytes: 4 * GiB, diskBytes: 50 * GiB, bandwidthBps: MBIT100 };
  const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true } }), obs({ sizing, storage: { state: 'Progressing', reason: 'Copying', message: 'x' } }));
  assert.equal(p.status.phase, 'SyncingStorage');
  assert.equal(p.status.deadlines?.storageSeconds, 13185);
  assert.equal(p.status.deadlines?.memorySeconds, 8100);
  assert.equal(p.status.phaseDeadline, new Date(T0.getTime() + 13185_000).toISOString());
  // An hour and a half into the pre-copy is within its derived deadline (the old fixed one was 1 h).
  const later = new Date(T0.getTime() + 5400_000);
  const q = plan(wm({ storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true } }, p.status), obs({ now: later, storage: { state: 'Progressing', reason: 'Copying', message: 'x' } }));
  assert.equal(q.status.phase, 'SyncingStorage');
  assert.notEqual(q.status.failureReason, 'DeadlineExceeded');
  // A memory step past its derived deadline rolls back.
  const m = plan(wm({}, inPhase('MigratingMemory', T0, { deadlines: { storageSeconds: 3600, memorySeconds: 100, basis: 'x' } })), obs({ now: new Date(T0.getTime() + 101_000) }));
  assert.equal(m.status.failureReason, 'DeadlineExceeded');
});

test('spec.timeouts win over derived values', () => {
  const p = plan(wm({ timeouts: { memorySeconds: 42 } }), obs({ sizing: { memoryBytes: 4 * GiB, diskBytes: 50 * GiB, bandwidthBps: MBIT100 } }));
  assert.equal(p.status.deadlines?.memorySeconds, 42);
  assert.match(p.status.deadlines?.basis ?? '', /spec.timeouts sets the other/);
});
