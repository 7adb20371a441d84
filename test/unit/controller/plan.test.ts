import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PLAN_OPTIONS, plan } from '../../../src/controller/phases/plan.ts';
import type { Action } from '../../../src/controller/phases/actions.ts';
import { findCondition } from '../../../src/api/conditions.ts';
import { ALL_PHASES, type Phase, type WanMigrationStatus } from '../../../src/api/wanmigration.ts';
import type { Observed } from '../../../src/controller/phases/observed.ts';
import { wm, obs, vmim, inPhase, preparedTarget, T0 } from './fixtures.ts';

const types = (as: Action[]) => as.map((a) => a.type);
const cond = (st: WanMigrationStatus, t: string) => findCondition(st.conditions, t);
const later = (s: number) => new Date(T0.getTime() + s * 1000);
const NAMES = { source: 'mig-send-0123abcd00', target: 'mig-recv-0123abcd00' };

describe('preflight: bad input blocks with a reason, deletes nothing, retries slowly', () => {
  const cases: [string, Partial<Observed>, string][] = [
    ['conflict', { conflictWith: 'other' }, 'Conflict'],
    ['unknown site', { site: { ok: false, reason: 'SiteNotFound', message: 'no Site site-b' } }, 'SiteNotFound'],
    ['missing secret', { site: { ok: false, reason: 'KubeconfigSecretNotFound', message: 'x' } }, 'KubeconfigSecretNotFound'],
    ['invalid kubeconfig', { site: { ok: false, reason: 'KubeconfigInvalid', message: 'x' } }, 'KubeconfigInvalid'],
    ['unreachable', { targetCluster: { ok: false, reason: 'TargetClusterUnreachable', message: 'x' } }, 'TargetClusterUnreachable'],
    ['kubevirt off', { kubevirt: { ok: false, reason: 'DecentralizedLiveMigrationDisabled', message: 'x' } }, 'DecentralizedLiveMigrationDisabled'],
    ['missing VM', { source: { vmExists: false, handled: false } }, 'VMNotFound'],
    ['VM stopped', { source: { vmExists: true, runStrategy: 'Halted', handled: false } }, 'VMNotRunning'],
    ['not live-migratable', { source: { vmExists: true, vmiPhase: 'Running', liveMigratable: { status: 'False', reason: 'DisksNotLiveMigratable' }, handled: false } }, 'VMNotLiveMigratable'],
    ['missing target ns', { targetNamespace: { ok: false, reason: 'TargetNamespaceNotFound', message: 'x' } }, 'TargetNamespaceNotFound'],
    ['target namespace not allowed by the Site', { tenancy: { ok: false, reason: 'TargetNamespaceNotAllowed', message: 'x' } }, 'TargetNamespaceNotAllowed'],
    ['site being deleted', { siteDeleting: true }, 'SiteDeleting'],
    ['name collision', { target: { ...preparedTarget, vmOwned: false, ownedObjects: 0 } }, 'TargetNameCollision'],
    ['the Site\'s credentials lack the target rights in the namespace', { targetAccess: { ok: false, reason: 'TargetPermissionsMissing', message: 'x' } }, 'TargetPermissionsMissing'],
  ];
  test('the operator lacking its source-side rights in the VM\'s namespace blocks before anything starts', () => {
    const p = plan(wm(), obs({ sourceAccess: { ok: false, reason: 'SourcePermissionsMissing', message: 'this operator may not create virtualmachineinstancemigrations.kubevirt.io in namespace default' } }));
    assert.equal(p.status.phase, 'Pending');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'SourcePermissionsMissing');
    assert.deepEqual(p.actions, []);
  });
  test('a VM that mounts a ServiceAccount migrates only into a namespace of the same name', () => {
    const sa = { source: { vmExists: true, vmiPhase: 'Running', handled: false, serviceAccounts: ['builder'] } };
    const p = plan(wm({ targetNamespace: 'other' }), obs(sa));
    assert.equal(p.status.phase, 'Pending');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'ServiceAccountAcrossNamespaces');
    assert.match(cond(p.status, 'Stalled')?.message ?? '', /builder/);
    assert.deepEqual(p.actions, []);
    assert.notEqual(plan(wm(), obs(sa)).status.phase, 'Pending', 'same namespace: it starts');
  });
  for (const [name, o, reason] of cases) {
    test(name, () => {
      const p = plan(wm(), obs(o));
      assert.equal(p.status.phase, 'Pending');
      assert.equal(cond(p.status, 'Stalled')?.status, 'True');
      assert.equal(cond(p.status, 'Stalled')?.reason, reason);
      assert.equal(cond(p.status, 'Ready')?.reason, reason);
      assert.equal(cond(p.status, 'Reconciling')?.status, 'False');
      assert.deepEqual(p.actions, []);
      assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', reason]]);
      assert.equal(p.requeueAfterMs, 15000);
      assert.equal(p.status.migrationID, undefined);
      // the same blocked state again: no second event (no event spam), same requeue
      const again = plan(wm({}, p.status), obs(o));
      assert.deepEqual(again.events, []);
      // Still blocked later: it looks again less often (a quarter of the time blocked, ≤ 5 min).
      assert.equal(plan(wm({}, p.status), obs({ ...o, now: later(600) })).requeueAfterMs, 150_000);
      assert.equal(plan(wm({}, p.status), obs({ ...o, now: later(7200) })).requeueAfterMs, 300_000);
    });
  }
});

test('first reconcile without finalizer adds it, starts, and runs through link and storage to target preparation', () => {
  const p = plan(wm(), obs({ hasFinalizer: false }));
  assert.deepEqual(types(p.actions), ['AddFinalizer', 'EnsureCATrust', 'EnsureTargetObjects']);
  assert.equal(p.status.phase, 'PreparingTarget');
  assert.equal(p.status.migrationID, wm().metadata.uid);
  assert.equal(cond(p.status, 'LinkReady')?.status, 'True');
  assert.equal(cond(p.status, 'LinkReady')?.reason, 'ClusterAPIReachable');
  assert.equal(cond(p.status, 'StorageSynced')?.reason, 'DelegatedToKubeVirt');
  assert.equal(cond(p.status, 'StorageSynced')?.status, 'Unknown');
  assert.equal(cond(p.status, 'Reconciling')?.status, 'True');
  assert.equal(cond(p.status, 'Stalled')?.status, 'False');
  assert.deepEqual(p.status.targetVMRef, { site: 'site-b', namespace: 'default', name: 'vm-a' });
  // Everything PreparingTarget waits for is watched: only the safety-net resync is scheduled.
  assert.equal(p.requeueAfterMs, DEFAULT_PLAN_OPTIONS.resyncMs);
  assert.equal(p.status.observedGeneration, 1);
});

test('happy path end to end, one reconcile at a time', () => {
  let st: WanMigrationStatus | undefined;
  const step = (o: Partial<Observed>, now = T0) => { const p = plan(wm({}, st), obs({ now, ...o })); st = p.status; return p; };
  step({});
  assert.equal(st!.phase, 'PreparingTarget');
  let p = step({ target: preparedTarget });
  assert.equal(st!.phase, 'MigratingMemory');
  assert.deepEqual(p.actions, [{ type: 'CreateTargetVMIM' }]);
  assert.equal(st!.vmims?.target, NAMES.target);
  p = step({ target: preparedTarget, targetVMIM: vmim(NAMES.target, 'WaitingForSync') });
  assert.deepEqual(p.actions, [], 'no sync address yet');
  assert.equal(cond(st!, 'MemoryMigrated')?.reason, 'WaitingForSyncAddress');
  p = step({ target: preparedTarget, targetVMIM: vmim(NAMES.target, 'WaitingForSync', { synchronizationAddress: '192.0.2.10:9185' }) });
  assert.deepEqual(p.actions, [{ type: 'CreateSourceVMIM', connectURL: '192.0.2.10:9185' }]);
  p = step({ target: preparedTarget, sourceVMIM: vmim(NAMES.source, 'Synchronizing'), targetVMIM: vmim(NAMES.target, 'WaitingForSync') });
  assert.deepEqual(p.actions, []);
  assert.equal(cond(st!, 'MemoryMigrated')?.reason, 'InProgress');
  assert.equal(st!.progress?.percent, 54);
  // KubeVirt's real order after the sync: Pending … Running, shared by both VMIMs.
  for (const [phase, pct] of [['Pending', 56], ['Scheduling', 58], ['Scheduled', 60], ['PreparingTarget', 62], ['TargetReady', 64], ['Running', 70]] as const) {
    p = step({ target: preparedTarget, sourceVMIM: vmim(NAMES.source, phase), targetVMIM: vmim(NAMES.target, phase) });
    assert.equal(st!.progress?.percent, pct, phase);
  }
  p = step({ target: { ...preparedTarget, vmiPhase: 'Running' }, sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Succeeded') });
  assert.equal(st!.phase, 'CuttingOver', 'waits until the target VM left WaitAsReceiver');
  assert.equal(cond(st!, 'StorageSynced')?.status, 'True');
  assert.deepEqual(p.actions, []);
  const running = { ...preparedTarget, vmiPhase: 'Running', vmRunStrategy: 'Always' };
  p = step({ target: running, sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Succeeded') });
  assert.deepEqual(p.actions, [{ type: 'FinishSource', mode: 'Stop' }]);
  p = step({ target: running, source: { vmExists: true, runStrategy: 'Halted', handled: true }, sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Succeeded') });
  assert.equal(st!.phase, 'Succeeded');
  assert.equal(p.requeueAfterMs, undefined);
  for (const t of ['Ready', 'LinkReady', 'StorageSynced', 'TargetPrepared', 'MemoryMigrated', 'CutoverComplete']) assert.equal(cond(st!, t)?.status, 'True', t);
  assert.equal(cond(st!, 'Reconciling')?.status, 'False');
  assert.equal(cond(st!, 'Stalled')?.status, 'False');
  assert.equal(st!.progress?.percent, 100);
  assert.ok(st!.completionTime);
  assert.deepEqual(p.events.map((e) => e.reason), ['Succeeded']);
});

test('never handles the source before the target VMI runs', () => {
  for (const vmiPhase of [undefined, 'WaitingForSync', 'Scheduling', 'Failed']) {
    const p = plan(wm({}, inPhase('CuttingOver')), obs({ target: { ...preparedTarget, vmiPhase, vmRunStrategy: 'Always' }, sourceVMIM: vmim(NAMES.source, 'Succeeded') }));
    assert.ok(!types(p.actions).includes('FinishSource'), String(vmiPhase));
    assert.equal(p.status.phase, 'CuttingOver');
  }
});

test('sourceAfterCutover modes reach FinishSource with the mode', () => {
  for (const mode of ['Stop', 'Delete', 'Keep'] as const) {
    const p = plan(wm({ sourceAfterCutover: mode }, inPhase('CuttingOver')), obs({ target: { ...preparedTarget, vmiPhase: 'Running', vmRunStrategy: 'Always' } }));
    assert.deepEqual(p.actions, [{ type: 'FinishSource', mode }]);
  }
});

const ACTIVE: Phase[] = ['ConnectingLink', 'SyncingStorage', 'PreparingTarget', 'AwaitingCutover', 'MigratingMemory'];

/** Observed state matching each active phase (objects we created exist). */
function obsFor(phase: Phase, extra: Partial<Observed> = {}): Partial<Observed> {
  const base: Partial<Observed> = {};
  if (phase === 'PreparingTarget' || phase === 'AwaitingCutover') base.target = { ...preparedTarget, vmiPhase: undefined, objectsComplete: phase === 'AwaitingCutover' };
  if (phase === 'MigratingMemory') {
    base.target = preparedTarget;
    base.sourceVMIM = vmim(NAMES.source, 'Running');
    base.targetVMIM = vmim(NAMES.target, 'Running');
  }
  return { ...base, ...extra };
}
const statusFor = (phase: Phase) => inPhase(phase, T0, phase === 'MigratingMemory' ? { vmims: { ...NAMES } } : {});

describe('abort at every active phase rolls back and ends Aborted with the source untouched', () => {
  for (const phase of ACTIVE) {
    test(phase, () => {
      const o = obsFor(phase);
      const p = plan(wm({ abort: true }, statusFor(phase)), obs(o));
      const expected: string[] = [];
      if (o.sourceVMIM) expected.push('DeleteSourceVMIM');
      if (o.targetVMIM) expected.push('DeleteTargetVMIM');
      // The receiver goes once the VMIMs are gone (KubeVirt has settled the migration's outcome).
      if (o.target?.ownedObjects && !o.sourceVMIM && !o.targetVMIM) expected.push('DeleteTargetObjects');
      assert.deepEqual(types(p.actions), expected);
      assert.ok(!types(p.actions).includes('FinishSource'));
      assert.equal(p.status.failureReason, 'Aborted');
      if (expected.length) {
        assert.equal(p.status.phase, 'RollingBack');
        // next reconcile: everything gone → Aborted
        const q = plan(wm({ abort: true }, p.status), obs({ target: { ...preparedTarget, vmExists: false, vmOwned: false, ownedObjects: 0 } }));
        assert.deepEqual(q.actions, []);
        assert.equal(q.status.phase, 'Aborted');
        assert.equal(cond(q.status, 'Stalled')?.status, 'False');
        assert.equal(cond(q.status, 'Ready')?.reason, 'Aborted');
      } else {
        assert.equal(p.status.phase, 'Aborted');
      }
    });
  }
  test('Pending (not started)', () => {
    const p = plan(wm({ abort: true }), obs());
    assert.equal(p.status.phase, 'Aborted');
    assert.deepEqual(types(p.actions), []);
  });
});

describe('deletion at every phase', () => {
  for (const phase of ACTIVE) {
    test(`${phase}: rolls back, then removes the finalizer`, () => {
      const o = obsFor(phase);
      const p = plan(wm({}, statusFor(phase)), obs({ ...o, deleting: true }));
      const hasWork = !!(o.sourceVMIM || o.targetVMIM || o.target?.ownedObjects);
      assert.equal(types(p.actions).includes('RemoveFinalizer'), !hasWork);
      assert.equal(p.status.failureReason, 'Deleted');
      const q = plan(wm({}, p.status), obs({ deleting: true, target: { ...preparedTarget, vmExists: false, vmOwned: false, ownedObjects: 0 } }));
      assert.deepEqual(types(q.actions), ['RemoveFinalizer']);
      assert.equal(q.status.phase, 'Aborted');
    });
  }
  for (const phase of ['CuttingOver', 'Succeeded', 'Failed', 'Aborted'] as Phase[]) {
    test(`${phase}: removes the finalizer and leaves the target alone`, () => {
      const p = plan(wm({}, inPhase(phase)), obs({ deleting: true, target: preparedTarget }));
      assert.deepEqual(types(p.actions), ['RemoveFinalizer']);
    });
  }
  test('CuttingOver with pre-copy and relay: releases the agents (volumes kept) and the flows, then removes the finalizer', () => {
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true } }, inPhase('CuttingOver')), obs({ deleting: true, target: preparedTarget, relayAvailable: true }));
    assert.deepEqual(p.actions, [{ type: 'ReleaseStorage', rolledBack: false }, { type: 'ReleaseRelayFlows' }, { type: 'RemoveFinalizer' }]);
  });
  test('Pending (never started): just removes the finalizer', () => {
    assert.deepEqual(types(plan(wm(), obs({ deleting: true })).actions), ['RemoveFinalizer']);
  });
  test('already without finalizer: nothing to do', () => {
    assert.deepEqual(types(plan(wm({}, inPhase('Succeeded')), obs({ deleting: true, hasFinalizer: false })).actions), []);
  });
});

describe('deadlines at every phase', () => {
  const limits: Record<string, number> = { ConnectingLink: 300, SyncingStorage: 3600, PreparingTarget: 600, MigratingMemory: 1800, CuttingOver: 600 };
  const stuck: Record<string, Partial<Observed>> = {
    ConnectingLink: { link: { state: 'Progressing', reason: 'Handshaking', message: 'x' } },
    SyncingStorage: { storage: { state: 'Progressing', reason: 'Copying', message: 'x' } },
    PreparingTarget: obsFor('PreparingTarget'),
    MigratingMemory: obsFor('MigratingMemory'),
    CuttingOver: { target: { ...preparedTarget, vmiPhase: 'Scheduling' } },
  };
  for (const [phase, limit] of Object.entries(limits) as [Phase, number][]) {
    const spec = phase === 'SyncingStorage' ? { storage: { mode: 'CloudNetPreCopy' as const } } : {};
    test(`${phase}: within the deadline keeps going and requeues at the deadline`, () => {
      const p = plan(wm(spec, statusFor(phase)), obs({ ...stuck[phase], now: later(limit - 1) }));
      assert.equal(p.status.phase, phase);
      assert.ok(p.requeueAfterMs! <= 2000);
    });
    test(`${phase}: past the deadline → Stalled DeadlineExceeded${phase === 'CuttingOver' ? ' (never rolls back)' : ' and rollback'}`, () => {
      const p = plan(wm(spec, statusFor(phase)), obs({ ...stuck[phase], now: later(limit + 1) }));
      if (phase === 'CuttingOver') {
        assert.equal(p.status.phase, 'CuttingOver');
        assert.equal(cond(p.status, 'Stalled')?.reason, 'DeadlineExceeded');
        assert.ok(!types(p.actions).some((t) => t.startsWith('Delete')));
      } else {
        assert.ok(['RollingBack', 'Failed'].includes(p.status.phase!));
        assert.equal(p.status.failureReason, 'DeadlineExceeded');
        assert.equal(cond(p.status, 'Stalled')?.status, p.status.phase === 'Failed' ? 'True' : 'False');
        assert.match(p.status.failureMessage!, new RegExp(phase));
      }
      assert.ok(p.events.some((e) => e.reason === 'DeadlineExceeded'));
    });
    test(`${phase}: onDeadline=Wait only marks Stalled`, () => {
      const p = plan(wm({ ...spec, onDeadline: 'Wait' }, statusFor(phase)), obs({ ...stuck[phase], now: later(limit + 1) }));
      assert.equal(p.status.phase, phase);
      assert.equal(cond(p.status, 'Stalled')?.reason, 'DeadlineExceeded');
      assert.equal(cond(p.status, 'Reconciling')?.status, 'False');
    });
  }
  test('a hung pair (source Synchronizing, target WaitingForSync forever) is rolled back at the memory deadline, deleting both VMIMs', () => {
    const o = { target: preparedTarget, sourceVMIM: vmim(NAMES.source, 'Synchronizing'), targetVMIM: vmim(NAMES.target, 'WaitingForSync') };
    const p = plan(wm({ timeouts: { memorySeconds: 5 } }, statusFor('MigratingMemory')), obs({ ...o, now: later(6) }));
    assert.deepEqual(types(p.actions), ['DeleteSourceVMIM', 'DeleteTargetVMIM']);
    assert.equal(p.status.failureReason, 'DeadlineExceeded');
    const gone = plan(wm({ timeouts: { memorySeconds: 5 } }, p.status), obs({ now: later(7), target: preparedTarget }));
    assert.deepEqual(types(gone.actions), ['DeleteTargetObjects'], 'then the receiver, the VMIMs being gone and the source running');
    const q = plan(wm({ timeouts: { memorySeconds: 5 } }, p.status), obs({ now: later(7), target: { ...preparedTarget, vmExists: false, vmOwned: false, ownedObjects: 0 } }));
    assert.equal(q.status.phase, 'Failed');
    assert.equal(cond(q.status, 'Stalled')?.status, 'True');
    assert.equal(cond(q.status, 'Stalled')?.reason, 'DeadlineExceeded');
  });
});

describe('failures', () => {
  test('source VMIM Failed → rollback with the KubeVirt failure reason', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Failed', { failureReason: 'boom' }) }));
    assert.equal(p.status.failureReason, 'MigrationFailed');
    assert.match(p.status.failureMessage!, /boom/);
    assert.deepEqual(types(p.actions), ['DeleteSourceVMIM', 'DeleteTargetVMIM']);
  });
  test('target VMIM Failed → rollback', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), targetVMIM: vmim(NAMES.target, 'Failed') }));
    assert.equal(p.status.failureReason, 'MigrationFailed');
  });
  test('a VMIM we created vanished → MigrationCancelled, never recreated', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), targetVMIM: undefined }));
    assert.equal(p.status.failureReason, 'MigrationCancelled');
    assert.ok(!types(p.actions).includes('CreateTargetVMIM'));
  });
  test('decentralizedMigrationBlocked → Stalled with its message, no rollback before the deadline', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Pending', { blocked: 'target not reachable' }) }));
    assert.equal(p.status.phase, 'MigratingMemory');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'DecentralizedMigrationBlocked');
    assert.equal(cond(p.status, 'Stalled')?.message, 'target not reachable');
    assert.deepEqual(p.events.map((e) => e.reason), ['DecentralizedMigrationBlocked']);
  });
  test('link Failed → rollback', () => {
    const p = plan(wm({}, statusFor('ConnectingLink')), obs({ link: { state: 'Failed', reason: 'HandshakeFailed', message: 'no peer' } }));
    assert.equal(p.status.phase, 'Failed');
    assert.equal(p.status.failureReason, 'LinkFailed');
  });
  test('storage pre-copy Failed → rollback', () => {
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' } }, statusFor('SyncingStorage')), obs({ storage: { state: 'Failed', reason: 'IOError', message: 'disk' } }));
    assert.equal(p.status.failureReason, 'StorageSyncFailed');
  });
  test('source VM disappears mid-flight → rollback SourceVMLost', () => {
    const p = plan(wm({}, statusFor('PreparingTarget')), obs({ ...obsFor('PreparingTarget'), source: { vmExists: false, handled: false } }));
    assert.equal(p.status.failureReason, 'SourceVMLost');
    assert.deepEqual(types(p.actions), ['DeleteTargetObjects']);
  });
  test('target unreachable mid-flight → Stalled, phase kept, nothing deleted', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), target: undefined, targetCluster: { ok: false, reason: 'TargetClusterUnreachable', message: 'ECONNREFUSED' } }));
    assert.equal(p.status.phase, 'MigratingMemory');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'TargetClusterUnreachable');
    assert.deepEqual(p.actions, []);
  });
  test('the end of a rollback states the source VM\'s real state, not "left running" by default', () => {
    const rolling = { ...statusFor('ConnectingLink'), phase: 'RollingBack' as Phase, failureReason: 'SourceVMLost' };
    const gone = plan(wm({}, rolling), obs({ target: undefined, source: { vmExists: false, handled: false } }));
    assert.equal(gone.status.phase, 'Failed');
    assert.match(gone.events.at(-1)?.message ?? '', /source VM default\/vm-a no longer exists/);
    assert.match(cond(gone.status, 'Reconciling')?.message ?? '', /no longer exists/);
    assert.doesNotMatch(JSON.stringify(gone), /left running|is running/);
    const stopped = plan(wm({}, { ...rolling, failureReason: 'SourceVMNotRunning' }), obs({ target: undefined, source: { vmExists: true, runStrategy: 'Halted', handled: false } }));
    assert.match(stopped.events.at(-1)?.message ?? '', /is not running \(runStrategy Halted, no VMI\); this migration did not stop it/);
    const aborted = plan(wm({ abort: true }, { ...rolling, failureReason: 'Aborted' }), obs({ target: undefined }));
    assert.equal(aborted.status.phase, 'Aborted');
    assert.match(aborted.events.at(-1)?.message ?? '', /source VM default\/vm-a is running; this migration did not change it/);
  });
  test('rollback waits for an unreachable target and says why', () => {
    const st = { ...statusFor('PreparingTarget'), phase: 'RollingBack' as Phase, failureReason: 'Aborted' };
    const p = plan(wm({ abort: true }, st), obs({ target: undefined, targetCluster: { ok: false, reason: 'TargetClusterUnreachable', message: 'down' } }));
    assert.equal(p.status.phase, 'RollingBack');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'TargetCleanupBlocked');
  });
});

describe('the guest has moved: never roll back, whatever the VMIMs say after it', () => {
  const mm = statusFor('MigratingMemory');
  const running = { ...preparedTarget, vmiPhase: 'Running', vmRunStrategy: 'Always' };
  const noDeletes = (as: Action[]) => assert.ok(!types(as).some((t) => t.startsWith('Delete')), types(as).join(','));
  const cases: [string, Partial<Observed>][] = [
    ['source VMIM Succeeded, target VMIM Failed (its last sync)', { sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Failed') }],
    ['source VMIM Succeeded, target VMIM being deleted', { sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Running', { deleting: true }) }],
    ['target VMIM Succeeded, source VMIM deleted', { sourceVMIM: undefined, targetVMIM: vmim(NAMES.target, 'Succeeded') }],
    ['receiver VMI Running, both VMIMs gone', { target: running, sourceVMIM: undefined, targetVMIM: undefined }],
    ['receiver VMI Running, a VMIM Failed', { target: running, sourceVMIM: vmim(NAMES.source, 'Failed'), targetVMIM: vmim(NAMES.target, 'Running') }],
  ];
  for (const [name, o] of cases) {
    test(`${name} → CuttingOver, nothing deleted`, () => {
      const p = plan(wm({}, mm), obs({ ...obsFor('MigratingMemory'), ...o }));
      noDeletes(p.actions);
      assert.equal(p.status.failureReason, undefined);
      assert.ok(['CuttingOver', 'Succeeded'].includes(p.status.phase!), p.status.phase);
      assert.equal(cond(p.status, 'MemoryMigrated')?.status, 'True');
    });
  }
  test('a receiver VMI that is not ours does not count', () => {
    const p = plan(wm({}, mm), obs({ ...obsFor('MigratingMemory'), target: { ...running, vmOwned: false }, targetVMIM: vmim(NAMES.target, 'Failed') }));
    assert.equal(p.status.failureReason, 'MigrationFailed');
  });
  test('a rollback overtaken by the switch-over stops deleting and cuts over', () => {
    const rolling = { ...mm, phase: 'RollingBack' as Phase, failureReason: 'Aborted', failureMessage: 'spec.abort was set' };
    const p = plan(wm({ abort: true }, rolling), obs({ target: running, sourceVMIM: undefined, targetVMIM: undefined }));
    noDeletes(p.actions);
    assert.ok(['CuttingOver', 'Succeeded'].includes(p.status.phase!), p.status.phase);
    assert.equal(p.status.failureReason, undefined);
    assert.equal(p.status.failureMessage, undefined);
    assert.ok(p.events.some((e) => e.type === 'Warning' && e.reason === 'RollbackOvertaken'));
    // The same overtaken rollback while the WanMigration is being deleted: the finalizer goes, the target stays.
    const d = plan(wm({}, rolling), obs({ deleting: true, target: running, sourceVMIM: undefined, targetVMIM: undefined }));
    assert.deepEqual(types(d.actions), ['RemoveFinalizer']);
  });
  test('a rollback that is not overtaken goes on deleting', () => {
    const rolling = { ...mm, phase: 'RollingBack' as Phase, failureReason: 'Aborted' };
    const p = plan(wm({ abort: true }, rolling), obs({ target: preparedTarget, targetVMIM: vmim(NAMES.target, 'Running', { deleting: true }) }));
    assert.deepEqual(types(p.actions), ['DeleteTargetVMIM'], 'the VMIMs first');
    assert.equal(p.status.phase, 'RollingBack');
    const q = plan(wm({ abort: true }, p.status), obs({ target: preparedTarget }));
    assert.deepEqual(types(q.actions), ['DeleteTargetObjects'], 'then the receiver (the source runs)');
  });
  test('a receiver that may hold the guest is not deleted: the source VMI no longer runs and the receiver is Scheduled', () => {
    const rolling = { ...mm, phase: 'RollingBack' as Phase, failureReason: 'DeadlineExceeded' };
    const gone = { vmExists: true, runStrategy: 'Always', vmiPhase: 'Succeeded', handled: false };
    const p = plan(wm({}, rolling), obs({ source: gone, target: { ...preparedTarget, vmiPhase: 'Scheduled' } }));
    assert.deepEqual(p.actions, []);
    assert.equal(p.status.phase, 'RollingBack');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'RollbackUnsafe');
    assert.ok(p.events.some((e) => e.reason === 'RollbackUnsafe'));
    // The receiver back in WaitingForSync (its migration failed) holds nothing: it goes.
    const back = plan(wm({}, p.status), obs({ source: gone, target: { ...preparedTarget, vmiPhase: 'WaitingForSync' } }));
    assert.deepEqual(types(back.actions), ['DeleteTargetObjects']);
    // The documented way out: skip-target-cleanup leaves it and finishes the rollback.
    const skip = plan(wm({}, p.status), obs({ source: gone, target: { ...preparedTarget, vmiPhase: 'Scheduled' }, skipTargetCleanup: true }));
    assert.deepEqual(types(skip.actions), []);
    assert.equal(skip.status.phase, 'Failed');
    assert.ok(skip.events.some((e) => e.reason === 'TargetCleanupSkipped'));
  });
});

describe('storage modes', () => {
  test('CloudNetPreCopy without a provider stalls with StoragePreCopyUnavailable', () => {
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' } }), obs({ storage: { state: 'Unavailable', reason: 'StoragePreCopyUnavailable', message: 'no provider' } }));
    assert.equal(p.status.phase, 'SyncingStorage');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'StoragePreCopyUnavailable');
    assert.equal(cond(p.status, 'StorageSynced')?.status, 'False');
  });
  test('CloudNetPreCopy synced → PreparingTarget with progress merged', () => {
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' } }), obs({ storage: { state: 'Ready', reason: 'Synced', message: 'ok', progress: { bytesTotal: 10, bytesSent: 10, bytesOverWan: 4, reductionRatio: 0.4 } } }));
    assert.equal(p.status.phase, 'PreparingTarget');
    assert.equal(p.status.progress?.bytesOverWan, 4);
    const q = plan(wm({ storage: { mode: 'CloudNetPreCopy' } }, statusFor('SyncingStorage')), obs({ storage: { state: 'Progressing', reason: 'Copying', message: 'x', progress: { percent: 50 } } }));
    assert.equal(q.status.progress?.percent, 25, 'storage percent is banded into 10..40');
    assert.equal(cond(p.status, 'StorageSynced')?.status, 'True');
  });
  test('rollback of a CloudNetPreCopy migration releases storage, volumes included', () => {
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' }, abort: true }, statusFor('SyncingStorage')), obs());
    assert.deepEqual(p.actions, [{ type: 'ReleaseStorage', rolledBack: true }]);
  });
  test('success of a CloudNetPreCopy migration releases the agents but keeps the volumes, even when it passes CuttingOver in one reconcile', () => {
    const running = { ...preparedTarget, vmiPhase: 'Running', vmRunStrategy: 'Always' };
    const done = { target: running, source: { vmExists: true, runStrategy: 'Halted', handled: true }, sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Succeeded') };
    const p = plan(wm({ storage: { mode: 'CloudNetPreCopy' } }, { ...inPhase('MigratingMemory'), vmims: NAMES }), obs({ ...done, storage: { state: 'Ready', reason: 'Converged', message: 'x' } }));
    assert.equal(p.status.phase, 'Succeeded');
    assert.deepEqual(p.actions.filter((a) => a.type === 'ReleaseStorage'), [{ type: 'ReleaseStorage', rolledBack: false }]);
  });
});

describe('cutover gate', () => {
  const ready = { target: { ...preparedTarget } };
  test('Manual without approval waits in AwaitingCutover (Reconciling, not Stalled)', () => {
    const p = plan(wm({ cutover: { mode: 'Manual' } }, statusFor('PreparingTarget')), obs(ready));
    assert.equal(p.status.phase, 'AwaitingCutover');
    assert.equal(cond(p.status, 'Reconciling')?.reason, 'AwaitingApproval');
    assert.equal(cond(p.status, 'Stalled')?.status, 'False');
    assert.deepEqual(types(p.actions), []);
  });
  test('Manual approved proceeds to the memory migration', () => {
    const p = plan(wm({ cutover: { mode: 'Manual', approved: true } }, statusFor('AwaitingCutover')), obs(ready));
    assert.equal(p.status.phase, 'MigratingMemory');
    assert.deepEqual(types(p.actions), ['CreateTargetVMIM']);
  });
  test('Window: before, inside, after', () => {
    const window = { start: later(60).toISOString(), end: later(120).toISOString() };
    const before = plan(wm({ cutover: { mode: 'Window', window } }, statusFor('AwaitingCutover')), obs(ready));
    assert.equal(before.status.phase, 'AwaitingCutover');
    assert.equal(cond(before.status, 'Reconciling')?.reason, 'AwaitingCutoverWindow');
    assert.equal(before.requeueAfterMs, 15000);
    const inside = plan(wm({ cutover: { mode: 'Window', window } }, statusFor('AwaitingCutover')), obs({ ...ready, now: later(61) }));
    assert.equal(inside.status.phase, 'MigratingMemory');
    const after = plan(wm({ cutover: { mode: 'Window', window } }, statusFor('AwaitingCutover')), obs({ ...ready, now: later(121) }));
    assert.equal(cond(after.status, 'Stalled')?.reason, 'CutoverWindowMissed');
  });
  test('AwaitingCutover has no deadline', () => {
    const p = plan(wm({ cutover: { mode: 'Manual' } }, statusFor('AwaitingCutover')), obs({ ...ready, now: later(10 * 24 * 3600) }));
    assert.equal(p.status.phase, 'AwaitingCutover');
    assert.equal(cond(p.status, 'Stalled')?.status, 'False');
  });
});

describe('restart safety', () => {
  test('re-planning the same observed state is idempotent (same actions, same status)', () => {
    for (const phase of ACTIVE) {
      const o = obs(obsFor(phase));
      const a = plan(wm({}, statusFor(phase)), o);
      const b = plan(wm({}, statusFor(phase)), o);
      assert.deepEqual(a, b, phase);
    }
  });
  test('objects created before a crash (status not written) are adopted, not recreated', () => {
    // Status still says PreparingTarget / no vmims, but the target VMIM exists: no second create.
    const p = plan(wm({}, statusFor('AwaitingCutover')), obs({ target: preparedTarget, targetVMIM: vmim(NAMES.target, 'WaitingForSync', { synchronizationAddress: 'a:1' }) }));
    assert.deepEqual(p.actions, [{ type: 'CreateSourceVMIM', connectURL: 'a:1' }]);
    assert.equal(p.status.vmims?.source, NAMES.source);
  });
  test('VMIMs found but not recorded (crash before the status write) are recorded, so their loss is noticed', () => {
    const st = statusFor('MigratingMemory');
    delete st.vmims;
    const p = plan(wm({}, st), obs(obsFor('MigratingMemory')));
    assert.deepEqual(p.status.vmims, NAMES);
    const q = plan(wm({}, p.status), obs({ ...obsFor('MigratingMemory'), sourceVMIM: undefined }));
    assert.equal(q.status.failureReason, 'MigrationCancelled');
  });
  test('after success, abort is ignored with an event', () => {
    const p = plan(wm({ abort: true }, { ...inPhase('CuttingOver'), observedGeneration: 1 }, 2), obs({ target: { ...preparedTarget, vmiPhase: 'Scheduling' } }));
    assert.equal(p.status.phase, 'CuttingOver');
    assert.ok(p.events.some((e) => e.reason === 'AbortIgnored'));
  });
  test('terminal phases are left alone', () => {
    for (const phase of ['Succeeded', 'Failed', 'Aborted'] as Phase[]) {
      const p = plan(wm({}, inPhase(phase)), obs());
      assert.deepEqual(p.actions, []);
      assert.equal(p.status.phase, phase);
      assert.equal(p.requeueAfterMs, undefined);
    }
  });
});

test('spec change mid-flight is recorded (condition reason + event), not applied', () => {
  const p = plan(wm({ relay: { enabled: true } }, statusFor('MigratingMemory'), 2), obs({ ...obsFor('MigratingMemory'), specHash: 'h2' }));
  assert.equal(cond(p.status, 'Reconciling')?.reason, 'SpecChangeIgnored');
  assert.deepEqual(p.events.map((e) => e.reason), ['SpecChangeIgnored']);
  assert.equal(p.status.observedGeneration, 2);
});

test('the migration keeps the storage and relay settings it started with (status.startedWith), whatever the spec says later', () => {
  const started = plan(wm({ relay: { enabled: true, cacheSizeMiB: 64 }, storage: { mode: 'KubeVirt', defaultStorageClass: 'fast' } }), obs({ relayAvailable: true }));
  assert.deepEqual(started.status.startedWith?.relay, { enabled: true, compression: 'Zstd', dedup: true, deltaPages: true, cacheSizeMiB: 64 });
  assert.equal(started.status.startedWith?.storage?.defaultStorageClass, 'fast');
  // relay.enabled switched off mid-flight: the flows registered with the relay are still released after the memory moved.
  const st = { ...statusFor('MigratingMemory'), startedWith: started.status.startedWith };
  const p = plan(wm({ relay: { enabled: false } }, st, 2), obs({ ...obsFor('MigratingMemory'), relayAvailable: true, specHash: 'changed', targetVMIM: vmim(NAMES.target, 'Succeeded') }));
  assert.ok(types(p.actions).includes('ReleaseRelayFlows'), types(p.actions).join(','));
  assert.deepEqual(p.status.startedWith, started.status.startedWith);
  assert.ok(p.events.some((e) => e.reason === 'SpecChangeIgnored'));
});

test('every phase yields the kstatus trio', () => {
  for (const phase of ALL_PHASES) {
    const p = plan(wm({}, inPhase(phase)), obs(obsFor(phase)));
    for (const t of ['Ready', 'Reconciling', 'Stalled']) assert.ok(cond(p.status, t), `${phase}: ${t}`);
  }
});

test('conditions carry observedGeneration and keep lastTransitionTime while unchanged', () => {
  const a = plan(wm({}, undefined, 3), obs());
  const b = plan(wm({}, a.status, 3), obs({ now: later(5), target: { ...preparedTarget, vmiPhase: undefined } }));
  const la = cond(a.status, 'LinkReady')!;
  const lb = cond(b.status, 'LinkReady')!;
  assert.equal(la.observedGeneration, 3);
  assert.equal(lb.lastTransitionTime, la.lastTransitionTime);
});

describe('target disks and relay', () => {
  test('a DataVolume on the target that is not ours blocks the start (TargetNameCollision)', () => {
    const p = plan(wm(), obs({ target: { vmExists: false, vmOwned: false, objectsComplete: false, ownedObjects: 0, caTrusted: false, foreignDisks: ['vm-a-root'] } }));
    assert.equal(cond(p.status, 'Stalled')?.reason, 'TargetNameCollision');
    assert.match(cond(p.status, 'Stalled')!.message, /vm-a-root/);
    assert.deepEqual(p.actions, []);
  });
  test('relay.enabled without a relay: warned once at start, migration continues', () => {
    const p = plan(wm({ relay: { enabled: true } }), obs());
    assert.ok(p.events.some((e) => e.reason === 'RelayUnavailable' && e.type === 'Warning'));
    assert.equal(p.status.phase, 'PreparingTarget');
    const q = plan(wm({ relay: { enabled: true } }), obs({ relayAvailable: true }));
    assert.ok(!q.events.some((e) => e.reason === 'RelayUnavailable'));
  });
  test('relay byte counters are merged into status.progress during the memory migration', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), relayProgress: { bytesSent: 100, bytesOverWan: 25, reductionRatio: 0.25, rounds: 3 } }));
    assert.equal(p.status.progress?.bytesOverWan, 25);
    assert.equal(p.status.progress?.reductionRatio, 0.25);
    assert.equal(p.status.progress?.percent, 70, 'sender VMIM Running');
  });
});

test('deletion with a target that is gone for good: blocked until skip-target-cleanup is set', () => {
  const down = { target: undefined, targetCluster: { ok: false as const, reason: 'TargetClusterUnreachable', message: 'gone' } };
  const p = plan(wm({}, statusFor('PreparingTarget')), obs({ ...down, deleting: true }));
  assert.equal(cond(p.status, 'Stalled')?.reason, 'TargetCleanupBlocked');
  assert.ok(!types(p.actions).includes('RemoveFinalizer'));
  const q = plan(wm({}, p.status), obs({ ...down, deleting: true, skipTargetCleanup: true }));
  assert.deepEqual(types(q.actions), ['RemoveFinalizer']);
  assert.ok(q.events.some((e) => e.reason === 'TargetCleanupSkipped'));
});

describe('fidelity to real KubeVirt (decentralized live migration)', () => {
  const WAITING = 'waiting for incoming synchronization, unable to proceed';
  test('the receiver\'s decentralizedMigrationBlocked while WaitingForSync is normal: no stall, no Warning', () => {
    const o = { ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Synchronizing'), targetVMIM: vmim(NAMES.target, 'WaitingForSync', { blocked: WAITING }) };
    const p = plan(wm({}, statusFor('MigratingMemory')), obs(o));
    assert.equal(p.status.phase, 'MigratingMemory');
    assert.equal(cond(p.status, 'Stalled')?.status, 'False');
    assert.equal(cond(p.status, 'Reconciling')?.reason, 'WaitingForSync');
    assert.match(cond(p.status, 'Reconciling')?.message ?? '', /waiting for incoming synchronization/);
    assert.deepEqual(p.events, []);
    // Before the sender exists it is just as normal (the sender is created right after).
    const q = plan(wm({}, inPhase('MigratingMemory', T0, { vmims: { target: NAMES.target } })), obs({ ...o, sourceVMIM: undefined, targetVMIM: vmim(NAMES.target, 'WaitingForSync', { blocked: WAITING, synchronizationAddress: '192.0.2.2:9185' }) }));
    assert.equal(cond(q.status, 'Stalled')?.status, 'False');
    assert.deepEqual(types(q.actions), ['CreateSourceVMIM']);
  });
  test('the receiver blocked past WaitingForSync, or the sender blocked, is a stall', () => {
    const t = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), targetVMIM: vmim(NAMES.target, 'Scheduling', { blocked: 'x509: certificate signed by unknown authority' }) }));
    assert.equal(cond(t.status, 'Stalled')?.reason, 'DecentralizedMigrationBlocked');
    assert.match(cond(t.status, 'Stalled')?.message ?? '', /x509/);
    const s = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Synchronizing', { blocked: 'connection refused' }), targetVMIM: vmim(NAMES.target, 'WaitingForSync', { blocked: WAITING }) }));
    assert.equal(cond(s.status, 'Stalled')?.message, 'connection refused');
  });
  test('a VMIM someone else is deleting (KubeVirt finalizer holds it) → MigrationCancelled rollback', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), targetVMIM: vmim(NAMES.target, 'Running', { deleting: true }) }));
    assert.equal(p.status.failureReason, 'MigrationCancelled');
    assert.deepEqual(types(p.actions), ['DeleteSourceVMIM', 'DeleteTargetVMIM']);
    assert.equal(p.status.phase, 'RollingBack', 'waits until the finalizer lets go');
  });
  test('a VMIM with our name but not our label is never deleted nor waited for', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Running', { foreign: true }) }));
    assert.equal(p.status.failureReason, 'TargetNameCollision');
    assert.ok(!types(p.actions).includes('DeleteSourceVMIM'));
    const q = plan(wm({}, p.status), obs({ sourceVMIM: vmim(NAMES.source, 'Running', { foreign: true }), target: { ...preparedTarget, vmExists: false, vmOwned: false, ownedObjects: 0 } }));
    assert.equal(q.status.phase, 'Failed');
    assert.deepEqual(types(q.actions), []);
  });
  test('a foreign Succeeded VMIM with our name does not count as the point of no return', () => {
    const p = plan(wm({ abort: true }, statusFor('MigratingMemory')), obs({ ...obsFor('MigratingMemory'), sourceVMIM: vmim(NAMES.source, 'Succeeded', { foreign: true }) }));
    assert.equal(p.status.failureReason, 'Aborted');
    assert.ok(!types(p.actions).includes('DeleteSourceVMIM'));
  });
  test('a rollback that cannot finish reports Stalled RollbackStalled after rollbackStallMs, and keeps trying', () => {
    const st = { ...statusFor('MigratingMemory'), phase: 'RollingBack' as Phase, failureReason: 'Aborted' };
    const stuck = { target: { ...preparedTarget, ownedObjects: 0, vmExists: false }, targetVMIM: vmim(NAMES.target, 'Failed', { deleting: true }) };
    const early = plan(wm({ abort: true }, st), obs({ ...stuck, now: later(299) }));
    assert.equal(cond(early.status, 'Stalled')?.status, 'False');
    const p = plan(wm({ abort: true }, st), obs({ ...stuck, now: later(301) }));
    assert.equal(p.status.phase, 'RollingBack');
    assert.equal(cond(p.status, 'Stalled')?.reason, 'RollbackStalled');
    assert.match(cond(p.status, 'Stalled')?.message ?? '', /target VMIM mig-recv-0123abcd00 \(deleting; held by a finalizer\)/);
    assert.deepEqual(types(p.actions), ['DeleteTargetVMIM']);
    assert.ok(p.events.some((e) => e.type === 'Warning' && e.reason === 'RollbackStalled'));
  });
  test('a kubevirt-ca that is not PEM certificates: Stalled with the reason, nothing copied into the other trust store', () => {
    const bad = { reason: 'CABundleInvalid', message: 'ConfigMap kubevirt/kubevirt-ca on the source cluster is not a PEM certificate bundle: certificate 1 does not parse as X.509' };
    const p = plan(wm({}, statusFor('PreparingTarget')), obs({ target: { ...preparedTarget, vmiPhase: undefined, objectsComplete: false, caTrusted: false, caProblem: bad } }));
    assert.equal(p.status.phase, 'PreparingTarget');
    assert.ok(!types(p.actions).includes('EnsureCATrust'));
    assert.equal(cond(p.status, 'Stalled')?.reason, 'CABundleInvalid');
    assert.equal(cond(p.status, 'TargetPrepared')?.reason, 'CABundleInvalid');
    assert.ok(p.events.some((e) => e.reason === 'CABundleInvalid'));
  });
  test('a Secret/ConfigMap on the target with other content: TargetNameCollision before the start; rollback in flight deletes only ours', () => {
    const pre = plan(wm(), obs({ target: { ...preparedTarget, vmExists: false, vmOwned: false, ownedObjects: 0, foreignAux: ['Secret vm-a-cloudinit'] } }));
    assert.equal(pre.status.phase, 'Pending');
    assert.equal(cond(pre.status, 'Stalled')?.reason, 'TargetNameCollision');
    assert.match(cond(pre.status, 'Stalled')?.message ?? '', /Secret vm-a-cloudinit .* content different/);
    assert.deepEqual(pre.actions, []);
    const mid = plan(wm({}, statusFor('PreparingTarget')), obs({ target: { ...preparedTarget, foreignAux: ['ConfigMap cfg'] } }));
    assert.equal(mid.status.failureReason, 'TargetNameCollision');
    assert.deepEqual(types(mid.actions), ['DeleteTargetObjects'], 'only objects labelled with our uid');
  });
});

describe('when to look again (event-driven: watched waits only resync, unwatched progress is polled)', () => {
  const opts = { ...DEFAULT_PLAN_OPTIONS, pollMs: 2000, resyncMs: 60_000 };
  const inFlight = obs({ target: preparedTarget, sourceVMIM: vmim(NAMES.source, 'Scheduling'), targetVMIM: vmim(NAMES.target, 'Scheduling') });
  test('MigratingMemory without a relay waits for VMIM changes', () => {
    const p = plan(wm({}, statusFor('MigratingMemory')), inFlight, opts);
    assert.equal(p.status.phase, 'MigratingMemory');
    assert.equal(p.requeueAfterMs, 60_000);
  });
  test('MigratingMemory with a relay polls its byte counters', () => {
    const registered = { state: 'Ready' as const, reason: 'FlowsRegistered', message: 'registered' };
    const p = plan(wm({ relay: { enabled: true } }, statusFor('MigratingMemory')), { ...inFlight, relayAvailable: true, relayRegistration: registered }, opts);
    assert.equal(p.requeueAfterMs, 2000);
    // Until the flows are registered it looks sooner: a flow that starts unregistered passes the relay by.
    const waiting = plan(wm({ relay: { enabled: true } }, statusFor('MigratingMemory')), { ...inFlight, relayAvailable: true }, opts);
    assert.equal(waiting.requeueAfterMs, opts.relayPollMs);
  });
  test('a rollback waiting on deletions looks again when RollbackStalled would be due', () => {
    const st = { ...statusFor('PreparingTarget'), phase: 'RollingBack' as const, phaseStartTime: T0.toISOString(), failureReason: 'Aborted' };
    const p = plan(wm({ abort: true }, st), obs({ now: later(10), target: { ...preparedTarget, ownedObjects: 3 } }), { ...opts, rollbackStallMs: 30_000 });
    assert.deepEqual(types(p.actions), ['DeleteTargetObjects']);
    assert.equal(p.requeueAfterMs, 20_001);
  });
  test('an unreachable target during rollback is polled', () => {
    const st = { ...statusFor('PreparingTarget'), phase: 'RollingBack' as const, phaseStartTime: T0.toISOString(), failureReason: 'Aborted' };
    const p = plan(wm({ abort: true }, st), obs({ now: later(10), target: undefined, targetCluster: { ok: false, reason: 'TargetClusterUnreachable', message: 'down' } }), opts);
    assert.equal(findCondition(p.status.conditions, 'Stalled')?.reason, 'TargetCleanupBlocked');
    assert.equal(p.requeueAfterMs, 2000);
  });
});

test('Stop leaves halting a migrated-away source VM to KubeVirt for sourceHaltGraceMs, then does it', () => {
  const o = obs({ now: later(5), target: { ...preparedTarget, vmiPhase: 'Running', vmRunStrategy: 'Always' }, source: { vmExists: true, runStrategy: 'Always', vmiPhase: 'Succeeded', handled: false } });
  const waiting = plan(wm({}, inPhase('CuttingOver')), o);
  assert.deepEqual(waiting.actions, []);
  assert.equal(cond(waiting.status, 'CutoverComplete')?.reason, 'WaitingForSourceHalt');
  assert.equal(waiting.requeueAfterMs, DEFAULT_PLAN_OPTIONS.sourceHaltGraceMs - 5000 + 1, 'looks again when the grace ends');
  const late = plan(wm({}, inPhase('CuttingOver')), { ...o, now: later(DEFAULT_PLAN_OPTIONS.sourceHaltGraceMs / 1000 + 1) });
  assert.deepEqual(late.actions, [{ type: 'FinishSource', mode: 'Stop' }]);
});
