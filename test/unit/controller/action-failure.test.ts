// A failed action still lets the planned status through (deadline clock), minus what only the
// failed and skipped actions would have made true, with the failure as a condition and an Event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../../src/controller/phases/plan.ts';
import { withActionFailure } from '../../../src/controller/phases/action-failure.ts';
import { findCondition } from '../../../src/api/conditions.ts';
import type { Phase, WanMigrationStatus } from '../../../src/api/wanmigration.ts';
import { wm, obs, vmim, inPhase, preparedTarget, T0 } from './fixtures.ts';

const cond = (st: WanMigrationStatus, t: string) => findCondition(st.conditions, t);
const later = (s: number) => new Date(T0.getTime() + s * 1000);
const REFUSED = 'cannot create VirtualMachine default/vm-a on site-b: HTTP 403 Forbidden: virtualmachines.kubevirt.io "vm-a" is forbidden: exceeded quota';

test('a target create refused on the first pass: the phase and its start time are written, with the API server\'s message', () => {
  const w = wm();
  const p = plan(w, obs());
  assert.deepEqual(p.actions.map((a) => a.type), ['EnsureCATrust', 'EnsureTargetObjects']);
  const r = withActionFailure(w, p, { index: 1, message: REFUSED }, T0);
  assert.equal(r.status.phase, 'PreparingTarget');
  assert.equal(r.status.phaseStartTime, T0.toISOString());
  for (const t of ['TargetPrepared', 'Ready', 'Stalled']) {
    assert.equal(cond(r.status, t)?.reason, 'TargetObjectCreateFailed', t);
    assert.equal(cond(r.status, t)?.message, REFUSED, t);
  }
  assert.equal(cond(r.status, 'Stalled')?.status, 'True');
  assert.deepEqual(r.events.at(-1), { type: 'Warning', reason: 'TargetObjectCreateFailed', message: REFUSED });
  // The same failure again: no new Event.
  const again = withActionFailure(wm({}, r.status), plan(wm({}, r.status), obs()), { index: 1, message: REFUSED }, later(1));
  assert.ok(!again.events.some((e) => e.reason === 'TargetObjectCreateFailed'));
});

test('with that status written, the deadline of the phase fires and rolls back', () => {
  const w = wm({ timeouts: { targetPreparedSeconds: 5 } });
  const first = withActionFailure(w, plan(w, obs()), { index: 1, message: REFUSED }, T0).status;
  const p = plan(wm({ timeouts: { targetPreparedSeconds: 5 } }, first), obs({ now: later(6), target: { ...preparedTarget, vmExists: false, vmOwned: false, objectsComplete: false, ownedObjects: 1 } }));
  assert.equal(p.status.phase, 'RollingBack');
  assert.equal(p.status.failureReason, 'DeadlineExceeded');
  assert.equal(p.status.failureMessage, `phase PreparingTarget exceeded its deadline of 5s (TargetObjectCreateFailed: ${REFUSED})`);
  assert.ok(p.actions.some((a) => a.type === 'DeleteTargetObjects'));
});

test('a VMIM whose create failed is not recorded (it would read as deleted by someone else)', () => {
  const st = inPhase('MigratingMemory');
  const p = plan(wm({}, st), obs({ target: preparedTarget }));
  assert.deepEqual(p.actions, [{ type: 'CreateTargetVMIM' }]);
  assert.ok(p.status.vmims?.target);
  const r = withActionFailure(wm({}, st), p, { index: 0, message: 'refused' }, T0);
  assert.equal(r.status.vmims?.target, undefined);
  assert.equal(cond(r.status, 'MemoryMigrated')?.reason, 'TargetVMIMCreateFailed');
  // Next pass: the planner tries again instead of concluding MigrationCancelled.
  const next = plan(wm({}, r.status), obs({ target: preparedTarget }));
  assert.deepEqual(next.actions, [{ type: 'CreateTargetVMIM' }]);
  // A sender whose create failed, with the receiver already recorded: the receiver stays.
  const st2 = { ...st, vmims: { target: 'mig-recv-0123abcd00' } };
  const p2 = plan(wm({}, st2), obs({ target: preparedTarget, targetVMIM: vmim('mig-recv-0123abcd00', 'WaitingForSync', { synchronizationAddress: '192.0.2.1:1' }) }));
  const r2 = withActionFailure(wm({}, st2), p2, { index: 0, message: 'refused' }, T0);
  assert.deepEqual(r2.status.vmims, { target: 'mig-recv-0123abcd00' });
});

test('a failed last clean-up step does not end the migration', () => {
  const st: WanMigrationStatus = { ...inPhase('SyncingStorage'), phase: 'RollingBack' as Phase, failureReason: 'Aborted', phaseStartTime: T0.toISOString() };
  const w = wm({ storage: { mode: 'CloudNetPreCopy' }, abort: true }, st);
  const p = plan(w, obs({ target: undefined }));
  assert.equal(p.status.phase, 'Aborted');
  assert.deepEqual(p.actions.map((a) => a.type), ['ReleaseStorage']);
  const r = withActionFailure(w, p, { index: 0, message: 'agent unreachable' }, later(1));
  assert.equal(r.status.phase, 'RollingBack');
  assert.equal(r.status.phaseStartTime, T0.toISOString());
  assert.equal(r.status.completionTime, undefined);
  assert.ok(!r.events.some((e) => e.reason === 'Aborted'), 'no end Event');
  assert.equal(cond(r.status, 'Stalled')?.reason, 'StorageReleaseFailed');
});
