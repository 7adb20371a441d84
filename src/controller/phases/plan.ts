// The WanMigration state machine as a pure function: (object, observed state) → actions, events,
// the next status and when to look again. Everything that touches a cluster lives elsewhere, so
// every phase × abort/deletion/deadline/failure/success combination is unit-testable.
//
// Steps: link → storage pre-copy → target prepared → (cutover gate) → memory migration → cutover.
// Any failure before the point of no return rolls back: delete both VMIMs and every object we
// created on the target, and leave the source VM as it is.
import { findCondition, isTrue, setCondition } from '../../api/conditions.ts';
import type { ConditionStatus } from '../../api/meta.ts';
import {
  ConditionTypes as C, Phases, TERMINAL_PHASES, effectiveSpec,
  type MigrationProgress, type Phase, type ResolvedSpec, type WanMigration, type WanMigrationStatus,
} from '../../api/wanmigration.ts';
import type { Action, EventRecord } from './actions.ts';
import { cutoverGate, phaseDeadlineMs, phasePercent } from './gates.ts';
import { deriveDeadlines } from './deadlines.ts';
import type { Observed } from './observed.ts';
import { migrationNames } from '../names.ts';

export interface PlanOptions {
  /** How often to look again while waiting on progress nothing watches (link, storage agents, relay, an unreachable target). */
  pollMs: number;
  /**
   * How long to wait, at most, for a change of watched objects (VMs, VMIs, VMIMs, DataVolumes,
   * KubeVirt CRs, CA bundles) before looking again anyway: their informers wake the reconciler,
   * so this is only a safety net.
   */
  resyncMs: number;
  /** How often to re-check while blocked on bad input (no crash loop, no hot loop). */
  blockedRetryMs: number;
  /**
   * After this long in RollingBack the migration reports Stalled=True (RollbackStalled): something
   * keeps an object alive, e.g. a VMIM finalizer stuck after a cancel (kubevirt/kubevirt#18216).
   * It keeps retrying; it never gives up on cleanup by itself.
   */
  rollbackStallMs: number;
  /**
   * With sourceAfterCutover Stop, how long to leave halting the source VM to KubeVirt, which does
   * it itself for runStrategy Always once the VMI migrated away, before doing it ourselves.
   */
  sourceHaltGraceMs: number;
  /**
   * How often to look for the target's migration proxy while relay flows wait to be registered:
   * the source connects soon after the proxy listens, and a flow that starts unregistered passes
   * the relay by.
   */
  relayPollMs: number;
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = { pollMs: 2000, resyncMs: 60_000, blockedRetryMs: 15000, rollbackStallMs: 300_000, sourceHaltGraceMs: 30_000, relayPollMs: 250 };

export interface Plan {
  actions: Action[];
  events: EventRecord[];
  status: WanMigrationStatus;
  requeueAfterMs?: number;
}

export const STEP_CONDITIONS = [C.LinkReady, C.StorageSynced, C.TargetPrepared, C.MemoryMigrated, C.CutoverComplete] as const;

/** Reasons the migration ended up in Aborted rather than Failed. */
const ABORT_REASONS = new Set(['Aborted', 'Deleted']);

interface Ctx {
  wm: WanMigration;
  spec: ResolvedSpec;
  obs: Observed;
  opts: PlanOptions;
  st: WanMigrationStatus;
  actions: Action[];
  events: EventRecord[];
  requeue?: number;
  stall?: { reason: string; message: string };
  note?: { reason: string; message: string };
  /** A provider's own percent for the current step (0-100), mapped into the step's band. */
  stepPercent?: number;
}

/** Overall percent bands of the steps that report their own progress. */
const BANDS: Partial<Record<Phase, [number, number]>> = { SyncingStorage: [10, 40], MigratingMemory: [70, 90] }; // the stream flows once the VMIM runs (70, gates.ts)

/** Merges a provider's counters; its percent is per step, so it is kept apart and banded. */
function mergeProgress(c: Ctx, p: MigrationProgress | undefined): void {
  if (!p) return;
  const { percent, ...counters } = p;
  c.st.progress = { ...c.st.progress, ...counters };
  if (percent !== undefined) c.stepPercent = percent;
}

const isTerminal = (p: Phase) => TERMINAL_PHASES.includes(p);
const phaseOf = (c: Ctx): Phase => c.st.phase ?? Phases.Pending;

function cond(c: Ctx, type: string, status: ConditionStatus, reason: string, message: string): void {
  c.st.conditions = setCondition(c.st.conditions, { type, status, reason, message }, c.wm.metadata.generation, c.obs.now);
}

function requeue(c: Ctx, ms: number): void {
  c.requeue = c.requeue === undefined ? ms : Math.min(c.requeue, ms);
}

function enter(c: Ctx, phase: Phase, message: string): void {
  c.st.phase = phase;
  c.st.phaseStartTime = c.obs.now.toISOString();
  c.events.push({ type: 'Normal', reason: phase, message });
}

/** Once memory has moved, the target is the only live copy: never roll back past this point. */
function pastPointOfNoReturn(c: Ctx): boolean {
  const p = phaseOf(c);
  return p === Phases.CuttingOver || p === Phases.Succeeded || isTrue(c.st.conditions, C.MemoryMigrated) || memoryMoved(c);
}

/**
 * What KubeVirt shows once the guest has moved: a VMIM of ours Succeeded on either side, or our
 * receiver VMI Running (a migration target's VMI leaves WaitingForSync/Scheduled for Running only
 * when the switch-over is done). Either one is enough: the two VMIMs are synchronized between the
 * clusters and need not agree (one may still be Running, or be deleted, or fail its last sync).
 */
function memoryMoved(c: Ctx): boolean {
  const { obs } = c;
  return [obs.sourceVMIM, obs.targetVMIM].some((v) => v?.phase === 'Succeeded' && !v.foreign)
    || (obs.target?.vmOwned === true && obs.target.vmiPhase === 'Running');
}

function rollback(c: Ctx, reason: string, message: string): void {
  if (phaseOf(c) !== Phases.RollingBack) {
    c.st.failureReason = reason;
    c.st.failureMessage = message;
    c.st.phase = Phases.RollingBack;
    c.st.phaseStartTime = c.obs.now.toISOString();
    c.events.push({ type: 'Warning', reason, message: `rolling back: ${message}` });
  }
  continueRollback(c);
}

function continueRollback(c: Ctx): void {
  const { obs } = c;
  // The memory migration can win the race against a rollback (an abort, a deadline or a failed
  // check at the very end of the transfer): the target then runs the only copy of the guest, and
  // deleting it would lose the VM. Finish the migration instead.
  if (memoryMoved(c)) {
    c.events.push({ type: 'Warning', reason: 'RollbackOvertaken', message: `the memory migration completed before the rollback (${c.st.failureReason ?? 'unknown reason'}) could cancel it; the target runs the VM now, so the migration goes on to cut over and nothing is deleted` });
    delete c.st.failureReason;
    delete c.st.failureMessage;
    memoryMigrated(c);
    return;
  }
  let pending = false;
  const waitingFor: string[] = [];
  // Someone else's VMIM that happens to carry our name is neither deleted nor waited for.
  if (obs.sourceVMIM && !obs.sourceVMIM.foreign) { c.actions.push({ type: 'DeleteSourceVMIM' }); pending = true; waitingFor.push(`source VMIM ${obs.sourceVMIM.name}${obs.sourceVMIM.deleting ? ' (deleting; held by a finalizer)' : ''}`); }
  if (obs.targetVMIM && !obs.targetVMIM.foreign) { c.actions.push({ type: 'DeleteTargetVMIM' }); pending = true; waitingFor.push(`target VMIM ${obs.targetVMIM.name}${obs.targetVMIM.deleting ? ' (deleting; held by a finalizer)' : ''}`); }
  const vmimsLeft = pending;
  // The target was touched only if we got as far as preparing it (targetVMRef is set then).
  const touchedTarget = c.st.targetVMRef !== undefined || c.st.vmims?.target !== undefined;
  if (touchedTarget) {
    if (!obs.target && obs.skipTargetCleanup) {
      c.events.push({ type: 'Warning', reason: 'TargetCleanupSkipped', message: 'cloudnet.io/skip-target-cleanup is set: objects this migration created on the unreachable target are left there' });
    } else if (!obs.target) {
      pending = true;
      c.stall = { reason: 'TargetCleanupBlocked', message: `cannot reach the target cluster to remove what this migration created there (set annotation cloudnet.io/skip-target-cleanup=true to give up on it): ${obs.targetCluster.ok ? 'unknown' : obs.targetCluster.message}` };
    } else if (obs.target.ownedObjects > 0 && vmimsLeft) {
      // The receiver goes only once both VMIMs are gone: KubeVirt has then settled how the
      // migration ended (cancelled, or completed after all: memoryMoved above), and nothing is
      // deleted under a guest that may be arriving.
      waitingFor.push(`${obs.target.ownedObjects} object(s) labelled as ours on the target, once the VMIMs are gone`);
    } else if (obs.target.ownedObjects > 0 && mayHoldTheGuest(c) && obs.skipTargetCleanup) {
      c.events.push({ type: 'Warning', reason: 'TargetCleanupSkipped', message: `cloudnet.io/skip-target-cleanup is set: the receiver VM on the target (VMI ${obs.target.vmiPhase}) and the other objects this migration created there are left in place` });
    } else if (obs.target.ownedObjects > 0 && mayHoldTheGuest(c)) {
      pending = true;
      c.stall = {
        reason: 'RollbackUnsafe',
        message: `the source VMI is not running (${obs.source.vmiPhase !== undefined ? `phase ${obs.source.vmiPhase || 'unset'}` : 'gone'}) and the receiver VMI on the target is ${obs.target.vmiPhase}: it may hold the only copy of the guest, so it is not deleted. `
          + 'Check it; set annotation cloudnet.io/skip-target-cleanup=true to leave what this migration created on the target in place and finish the rollback',
      };
    } else if (obs.target.ownedObjects > 0) {
      c.actions.push({ type: 'DeleteTargetObjects' });
      pending = true;
      waitingFor.push(`${obs.target.ownedObjects} object(s) labelled as ours on the target`);
    }
  }
  if (pending) {
    // Deletions of watched objects wake us up; an unreachable target (the only stall so far) is polled.
    requeue(c, c.stall ? c.opts.pollMs : c.opts.resyncMs);
    const since = Date.parse(c.st.phaseStartTime ?? '');
    if (!c.stall && Number.isFinite(since)) {
      const left = since + c.opts.rollbackStallMs - obs.now.getTime();
      if (left < 0) c.stall = { reason: 'RollbackStalled', message: `rollback has not finished after ${Math.round(c.opts.rollbackStallMs / 1000)}s; still waiting for: ${waitingFor.join(', ')}` };
      else requeue(c, left + 1);
    }
    return;
  }
  releaseLaunched(c, true);
  const aborted = ABORT_REASONS.has(c.st.failureReason ?? '');
  const final = aborted ? Phases.Aborted : Phases.Failed;
  c.st.phase = final;
  c.st.phaseStartTime = obs.now.toISOString();
  c.st.completionTime = obs.now.toISOString();
  c.events.push({ type: aborted ? 'Normal' : 'Warning', reason: final, message: `rolled back (${c.st.failureReason}); ${sourceState(c)}` });
}

/** What the migration launched for itself goes: the pre-copy's agents (its volumes too after a rollback) and the relay's flows. */
function releaseLaunched(c: Ctx, rolledBack: boolean): void {
  if (c.spec.storage.mode === 'CloudNetPreCopy') c.actions.push({ type: 'ReleaseStorage', rolledBack });
  if (c.spec.relay.enabled && c.obs.relayAvailable) c.actions.push({ type: 'ReleaseRelayFlows' });
}

/**
 * Could the receiver be holding the guest? The sending VMIM was created (the guest may have started
 * to move), the source VMI no longer runs, and the receiver VMI is in the phases of a target that
 * receives (a receiver whose migration failed goes back to WaitingForSync; Running is memoryMoved).
 */
function mayHoldTheGuest(c: Ctx): boolean {
  const { obs } = c;
  return c.st.vmims?.source !== undefined && obs.source.vmiPhase !== 'Running'
    && (obs.target?.vmiPhase === 'Scheduling' || obs.target?.vmiPhase === 'Scheduled');
}

/**
 * The source VM's state as observed now, for the messages of a migration that ended without
 * moving it. Before the point of no return the migration never touches the source VM, but the
 * VM's owner may have stopped or deleted it meanwhile (that may be why it failed).
 */
function sourceState(c: Ctx): string {
  const s = c.obs.source;
  const vm = `the source VM ${c.wm.metadata.namespace}/${c.spec.vmName}`;
  if (!s.vmExists) return `${vm} no longer exists`;
  if (s.vmiPhase === 'Running') return `${vm} is running; this migration did not change it`;
  return `${vm} is not running (runStrategy ${s.runStrategy ?? 'unknown'}, ${s.vmiPhase !== undefined ? `VMI phase ${s.vmiPhase || 'unset'}` : 'no VMI'}); this migration did not stop it`;
}

/** Checks that must pass before anything is created. Returns the first failure. */
function preflight(c: Ctx): { reason: string; message: string } | undefined {
  const { obs, spec } = c;
  if (obs.conflictWith) return { reason: 'Conflict', message: `WanMigration ${obs.conflictWith} already migrates VM ${spec.vmName}` };
  if (!obs.site.ok) return obs.site;
  // Tenancy before anything about the target: the answer for a refused namespace tells nothing
  // about it (not even whether it exists there).
  if (!obs.tenancy.ok) return obs.tenancy;
  if (obs.siteDeleting) return { reason: 'SiteDeleting', message: `Site ${spec.targetSite} is being deleted: no new migration starts on it` };
  for (const ch of [obs.targetCluster, obs.kubevirt]) if (!ch.ok) return ch;
  if (!obs.source.vmExists) return { reason: 'VMNotFound', message: `VirtualMachine ${spec.vmName} not found in namespace ${c.wm.metadata.namespace}` };
  if (obs.source.vmiPhase !== 'Running') return { reason: 'VMNotRunning', message: `VirtualMachine ${spec.vmName} is not running (VMI phase: ${obs.source.vmiPhase ?? 'none'})` };
  if (obs.sourceAccess && !obs.sourceAccess.ok) return obs.sourceAccess;
  const lm = obs.source.liveMigratable;
  if (lm && lm.status !== 'True') return { reason: 'VMNotLiveMigratable', message: `VMI ${spec.vmName} is not live-migratable: ${lm.reason ?? ''} ${lm.message ?? ''}`.trim() };
  if (!obs.targetNamespace.ok) return obs.targetNamespace;
  if (obs.targetAccess && !obs.targetAccess.ok) return obs.targetAccess;
  // A ServiceAccount is an identity of its namespace and is not copied: the receiver would mount
  // the target namespace's account of that name, another tenant's when the namespaces differ.
  const sas = obs.source.serviceAccounts ?? [];
  if (sas.length && spec.targetNamespace !== c.wm.metadata.namespace) {
    return { reason: 'ServiceAccountAcrossNamespaces', message: `VirtualMachine ${spec.vmName} mounts ServiceAccount(s) ${sas.join(', ')}, which are not copied: it can migrate only into a namespace of the same name (${c.wm.metadata.namespace}), not ${spec.targetNamespace}` };
  }
  if (obs.target?.vmExists && !obs.target.vmOwned) return { reason: 'TargetNameCollision', message: `a VirtualMachine ${spec.vmName} not created by this migration already exists in ${spec.targetSite}/${spec.targetNamespace}` };
  if (obs.target?.foreignDisks?.length) return { reason: 'TargetNameCollision', message: `DataVolume(s) ${obs.target.foreignDisks.join(', ')} not created by this migration already exist in ${spec.targetSite}/${spec.targetNamespace}` };
  if (obs.target?.foreignAux?.length) return { reason: 'TargetNameCollision', message: `${obs.target.foreignAux.join(', ')} not created by this migration already exist in ${spec.targetSite}/${spec.targetNamespace} with content different from the source's` };
  return undefined;
}

/** The deadlines of the data-bound steps, fixed at the start: the spec's, else derived from the data. */
function fixDeadlines(c: Ctx): void {
  const t = c.spec.timeouts;
  const d = deriveDeadlines(c.spec, c.obs.sizing ?? {});
  c.st.deadlines = {
    storageSeconds: t.storageSeconds ?? d.storageSeconds,
    memorySeconds: t.memorySeconds ?? d.memorySeconds,
    basis: t.storageSeconds !== undefined && t.memorySeconds !== undefined ? 'spec.timeouts' : `${d.basis}${t.storageSeconds !== undefined || t.memorySeconds !== undefined ? ' (spec.timeouts sets the other)' : ''}`,
  };
}

function start(c: Ctx): void {
  const now = c.obs.now.toISOString();
  c.st.migrationID = c.wm.metadata.uid;
  c.st.startTime = now;
  fixDeadlines(c);
  c.st.startedSpecHash = c.obs.specHash;
  // What the migration runs with from now on (effectiveSpec), whatever the spec says later.
  c.st.startedWith = { storage: structuredClone(c.spec.storage), relay: { ...c.spec.relay } };
  for (const t of STEP_CONDITIONS) cond(c, t, 'Unknown', 'NotStarted', 'step not started yet');
  if (c.spec.relay.enabled && !c.obs.relayAvailable) {
    c.events.push({ type: 'Warning', reason: 'RelayUnavailable', message: 'relay.enabled is set but this operator runs no relay: the memory migration goes over the WAN without CloudNet compression or deduplication' });
  }
  enter(c, Phases.ConnectingLink, `migration ${c.st.migrationID} of VM ${c.spec.vmName} to ${c.spec.targetSite}/${c.spec.targetNamespace} started`);
}

/** Checks that still apply while nothing irreversible has happened (before the VMIMs exist). */
function inFlightBeforeMemory(c: Ctx): boolean {
  const { obs, spec } = c;
  if (!obs.source.vmExists) { rollback(c, 'SourceVMLost', `VirtualMachine ${spec.vmName} disappeared from the source`); return false; }
  if (obs.source.vmiPhase !== 'Running') { rollback(c, 'SourceVMNotRunning', `source VMI is no longer running (phase ${obs.source.vmiPhase ?? 'none'})`); return false; }
  if (obs.target?.vmExists && !obs.target.vmOwned) { rollback(c, 'TargetNameCollision', `a VirtualMachine ${spec.vmName} not created by this migration appeared on the target`); return false; }
  if (obs.target?.foreignDisks?.length) { rollback(c, 'TargetNameCollision', `DataVolume(s) ${obs.target.foreignDisks.join(', ')} not created by this migration appeared on the target`); return false; }
  if (obs.target?.foreignAux?.length) { rollback(c, 'TargetNameCollision', `${obs.target.foreignAux.join(', ')} not created by this migration, with content different from the source's, appeared on the target`); return false; }
  return true;
}

/** One step of the current phase. Returns true when it moved to a new phase (then step again). */
function step(c: Ctx): boolean {
  const { obs, spec } = c;
  const phase = phaseOf(c);
  const reachable = obs.site.ok && obs.targetCluster.ok && obs.target !== undefined;
  const before = phase === Phases.ConnectingLink || phase === Phases.SyncingStorage || phase === Phases.PreparingTarget || phase === Phases.AwaitingCutover;
  if (before && !inFlightBeforeMemory(c)) return false;
  if (!reachable && phase !== Phases.ConnectingLink && phase !== Phases.SyncingStorage) {
    const why = !obs.site.ok ? obs.site : !obs.targetCluster.ok ? obs.targetCluster : !obs.targetNamespace.ok ? obs.targetNamespace
      : { reason: 'TargetClusterUnreachable', message: 'target cluster state unknown' };
    c.stall = { reason: why.reason, message: why.message };
    requeue(c, c.opts.pollMs);
    return false;
  }
  switch (phase) {
    case Phases.ConnectingLink: {
      const l = obs.link;
      if (l.state === 'Ready') {
        cond(c, C.LinkReady, 'True', l.reason, l.message);
        enter(c, Phases.SyncingStorage, 'link ready');
        return true;
      }
      if (l.state === 'Failed') { rollback(c, 'LinkFailed', l.message); return false; }
      cond(c, C.LinkReady, 'False', l.reason, l.message);
      if (l.state === 'Unavailable') c.stall = { reason: l.reason, message: l.message };
      requeue(c, c.opts.pollMs);
      return false;
    }
    case Phases.SyncingStorage: {
      const s = obs.storage;
      if (!s) {
        cond(c, C.StorageSynced, 'Unknown', 'DelegatedToKubeVirt', 'storage.mode is KubeVirt: KubeVirt copies the disks during the live migration');
        enter(c, Phases.PreparingTarget, 'storage copy delegated to KubeVirt');
        return true;
      }
      mergeProgress(c, s.progress);
      if (s.state === 'Ready') {
        cond(c, C.StorageSynced, 'True', s.reason, s.message);
        enter(c, Phases.PreparingTarget, 'storage pre-copy synced');
        return true;
      }
      if (s.state === 'Failed') { rollback(c, 'StorageSyncFailed', s.message); return false; }
      cond(c, C.StorageSynced, 'False', s.reason, s.message);
      if (s.state === 'Unavailable') c.stall = { reason: s.reason, message: s.message };
      requeue(c, s.state === 'Unavailable' ? c.opts.blockedRetryMs : c.opts.pollMs);
      return false;
    }
    case Phases.PreparingTarget: {
      const t = obs.target!;
      c.st.targetVMRef = { site: spec.targetSite, namespace: spec.targetNamespace, name: spec.vmName };
      if (t.caProblem) c.stall = t.caProblem; // garbage is never copied into the other cluster's trust store
      else if (!t.caTrusted) c.actions.push({ type: 'EnsureCATrust' });
      if (!t.objectsComplete) c.actions.push({ type: 'EnsureTargetObjects' });
      if (t.caTrusted && t.objectsComplete && t.vmOwned && t.vmiPhase !== undefined) {
        cond(c, C.TargetPrepared, 'True', 'ReceiverReady', `receiver VM ${spec.vmName} (runStrategy ${t.vmRunStrategy}) and its VMI (${t.vmiPhase}) exist on ${spec.targetSite}; CA trust in place`);
        enter(c, Phases.AwaitingCutover, 'target prepared');
        return true;
      }
      const missing = [!t.caTrusted && 'CA trust', !t.objectsComplete && 'target objects', t.vmiPhase === undefined && 'receiver VMI'].filter(Boolean).join(', ');
      cond(c, C.TargetPrepared, 'False', t.caProblem ? t.caProblem.reason : 'Preparing', t.caProblem ? t.caProblem.message : `waiting for: ${missing}`);
      requeue(c, t.caProblem ? c.opts.blockedRetryMs : c.opts.resyncMs);
      return false;
    }
    case Phases.AwaitingCutover: {
      const g = cutoverGate(spec, obs.now);
      if (g.open) { enter(c, Phases.MigratingMemory, 'cutover gate open: starting the memory migration'); return true; }
      if (g.missed) c.stall = { reason: g.reason, message: g.message };
      else c.note = { reason: g.reason, message: g.message };
      requeue(c, Math.min(g.retryInMs ?? c.opts.blockedRetryMs, c.opts.blockedRetryMs));
      return false;
    }
    case Phases.MigratingMemory: return stepMemory(c);
    case Phases.CuttingOver: return stepCutover(c);
    default: return false;
  }
}

function stepMemory(c: Ctx): boolean {
  const { obs, spec } = c;
  const s = obs.sourceVMIM;
  const t = obs.targetVMIM;
  // Adopt VMIMs created by a process that died before it could record them.
  if ((t && !c.st.vmims?.target) || (s && !c.st.vmims?.source)) {
    c.st.vmims = { ...c.st.vmims, ...(t ? { target: t.name } : {}), ...(s ? { source: s.name } : {}) };
  }
  for (const v of [s, t]) {
    if (v?.foreign) { rollback(c, 'TargetNameCollision', `a VMIM named ${v.name} that this migration did not create exists; it is left alone`); return false; }
  }
  // Success first: once the guest has moved, a VMIM deleted, missing or failed afterwards is not
  // a reason to roll back (that would delete the only running copy).
  if (memoryMoved(c)) {
    relayCondition(c);
    memoryMigrated(c);
    return true;
  }
  const vmims = c.st.vmims ?? {};
  const cancelled = [s, t].find((v) => v?.deleting && v.phase !== 'Succeeded');
  if (cancelled) {
    rollback(c, 'MigrationCancelled', `VMIM ${cancelled.name} is being deleted outside this migration (KubeVirt cancels the migration on both sides)`);
    return false;
  }
  if ((vmims.target && !t) || (vmims.source && !s)) {
    rollback(c, 'MigrationCancelled', `VMIM ${vmims.target && !t ? vmims.target : vmims.source} was deleted outside this migration`);
    return false;
  }
  for (const [side, v] of [['source', s], ['target', t]] as const) {
    if (v?.phase === 'Failed') { rollback(c, 'MigrationFailed', `${side} VMIM ${v.name} failed${v.failureReason ? `: ${v.failureReason}` : ''}`); return false; }
  }
  relayCondition(c);
  if (!t) {
    c.actions.push({ type: 'CreateTargetVMIM' });
    c.st.vmims = { ...vmims, target: migrationNames(c.wm).targetVMIM };
    cond(c, C.MemoryMigrated, 'False', 'CreatingReceiver', 'creating the receiving VMIM on the target');
  } else if (!s) {
    const url = t.synchronizationAddress ?? obs.target?.kubevirtSyncAddress;
    if (url) {
      c.actions.push({ type: 'CreateSourceVMIM', connectURL: url });
      c.st.vmims = { ...vmims, source: migrationNames(c.wm).sourceVMIM };
      cond(c, C.MemoryMigrated, 'False', 'CreatingSender', `creating the sending VMIM (connectURL ${url})`);
    } else {
      cond(c, C.MemoryMigrated, 'False', 'WaitingForSyncAddress', `waiting for target VMIM ${t.name} to publish status.synchronizationAddresses`);
    }
  } else {
    cond(c, C.MemoryMigrated, 'False', 'InProgress', `VMIMs: source ${s.phase || 'Unset'}, target ${t.phase || 'Unset'}`);
    mergeProgress(c, obs.relayProgress);
  }
  // The receiver reports decentralizedMigrationBlocked ("waiting for incoming synchronization")
  // for as long as it sits in WaitingForSync: normal until the sender connects, so not a stall
  // (kubevirt/kubevirt pkg/synchronization-controller: updateDecentralizedFailureOnTarget). A
  // real hang there is caught by the memory deadline.
  const targetBlocked = t?.phase === 'WaitingForSync' ? undefined : t?.blocked;
  const blocked = s?.blocked ?? targetBlocked;
  if (blocked !== undefined) c.stall = { reason: 'DecentralizedMigrationBlocked', message: blocked };
  else if (t?.blocked !== undefined && s) c.note = { reason: 'WaitingForSync', message: `target VMIM ${t.name}: ${t.blocked}` };
  // VMIM changes are watched; the relay's byte counters are not.
  requeue(c, spec.relay.enabled && obs.relayAvailable ? c.opts.pollMs : c.opts.resyncMs);
  return false;
}

export const MIGRATION_TLS_MESSAGE = 'KubeVirt encrypts the migration between the virt-handlers (KubeVirt CR '
  + 'spec.configuration.migrations.disableTLS is not true), so the relay carries the flows opaquely: no compression, '
  + 'deduplication or page deltas, WAN bytes about those of a plain migration. The WAN hop stays protected by WireGuard '
  + 'and the relay pair\'s mutual TLS; with disableTLS: true the relay can optimize the stream, and the hops inside '
  + 'each site (node to gateway) then carry it unencrypted.';

/** RelayOptimizing while memory moves: are the migration's flows registered, and can the relay reduce them? */
function relayCondition(c: Ctx): void {
  const { obs } = c;
  if (!c.spec.relay.enabled) return;
  if (!obs.relayAvailable) {
    cond(c, C.RelayOptimizing, 'False', 'RelayUnavailable', 'relay.enabled is set but this operator runs no relay: the migration crosses the WAN without it');
    return;
  }
  const r = obs.relayRegistration;
  if (!r) {
    if (findCondition(c.st.conditions, C.RelayOptimizing)?.status !== 'True') {
      cond(c, C.RelayOptimizing, 'Unknown', 'WaitingForMigrationEndpoint', 'waiting for the target\'s migration proxy (receiver VMI status.migrationState) to register its flows with the relay');
    }
    requeue(c, Math.min(c.opts.pollMs, c.opts.relayPollMs));
    return;
  }
  if (r.state !== 'Ready') {
    cond(c, C.RelayOptimizing, 'False', r.reason, r.message);
    requeue(c, Math.min(c.opts.pollMs, c.opts.relayPollMs));
    return;
  }
  if (obs.migrationTLS) cond(c, C.RelayOptimizing, 'False', 'MigrationTLSEnabled', `${MIGRATION_TLS_MESSAGE} ${r.message}`);
  else cond(c, C.RelayOptimizing, 'True', r.reason, r.message);
}

/** Memory moved: release the flows, and say so if the relay never carried them. */
function relayAfterMemory(c: Ctx): void {
  if (!c.spec.relay.enabled || !c.obs.relayAvailable) return;
  c.actions.push({ type: 'ReleaseRelayFlows' });
  const rc = findCondition(c.st.conditions, C.RelayOptimizing);
  if (rc?.status === 'True' && !c.st.progress?.bytesOverWan) {
    cond(c, C.RelayOptimizing, 'False', 'FlowNotIntercepted', 'the flows were registered, but no relay session carried them: the migration connected before the registration, or took a path that bypasses the site gateway');
  }
}

/** Memory has moved (memoryMoved): on to CuttingOver, which waits for the target VMI to run. */
function memoryMigrated(c: Ctx): void {
  const { obs, spec } = c;
  const s = obs.sourceVMIM;
  const t = obs.targetVMIM;
  cond(c, C.MemoryMigrated, 'True', 'MigrationSucceeded', `VMIMs: source ${s?.phase ?? 'gone'}, target ${t?.phase ?? 'gone'}`);
  relayAfterMemory(c);
  if (spec.storage.mode === 'KubeVirt') cond(c, C.StorageSynced, 'True', 'DelegatedToKubeVirt', 'KubeVirt copied the disks as part of the live migration');
  enter(c, Phases.CuttingOver, 'memory migrated; waiting for the target VMI to run');
}

function stepCutover(c: Ctx): boolean {
  const { obs, spec } = c;
  const t = obs.target!;
  if (t.vmiPhase !== 'Running' || t.vmRunStrategy === 'WaitAsReceiver') {
    cond(c, C.CutoverComplete, 'False', 'WaitingForTargetVMI', `target VMI phase ${t.vmiPhase ?? 'none'}, target VM runStrategy ${t.vmRunStrategy ?? 'unknown'}`);
    requeue(c, c.opts.resyncMs);
    return false;
  }
  if (!obs.source.handled) {
    // KubeVirt halts a source VM with runStrategy Always itself once its VMI migrated away
    // (Succeeded): stopping it too would only race KubeVirt. Wait for that (watched), and step in
    // only if it has not happened sourceHaltGraceMs into CuttingOver.
    const since = Date.parse(c.st.phaseStartTime ?? '');
    const left = since + c.opts.sourceHaltGraceMs - obs.now.getTime();
    if (spec.sourceAfterCutover === 'Stop' && obs.source.runStrategy === 'Always' && obs.source.vmiPhase === 'Succeeded' && Number.isFinite(since) && left > 0) {
      cond(c, C.CutoverComplete, 'False', 'WaitingForSourceHalt', `target runs; KubeVirt halts the source VM once its VMI migrated away (the operator stops it after ${Math.round(c.opts.sourceHaltGraceMs / 1000)}s otherwise)`);
      requeue(c, left + 1);
      return false;
    }
    c.actions.push({ type: 'FinishSource', mode: spec.sourceAfterCutover });
    cond(c, C.CutoverComplete, 'False', 'FinishingSource', `target runs; applying sourceAfterCutover=${spec.sourceAfterCutover} to the source VM`);
    requeue(c, c.opts.resyncMs);
    return false;
  }
  cond(c, C.CutoverComplete, 'True', 'TargetRunning', `VM ${spec.vmName} runs on ${spec.targetSite}/${spec.targetNamespace} with runStrategy ${t.vmRunStrategy}; source: ${spec.sourceAfterCutover}`);
  // The pre-copy's agents and credentials go; its volumes stay: they are the VM's disks now.
  if (spec.storage.mode === 'CloudNetPreCopy') c.actions.push({ type: 'ReleaseStorage', rolledBack: false });
  c.st.completionTime = obs.now.toISOString();
  enter(c, Phases.Succeeded, `VM ${spec.vmName} now runs on ${spec.targetSite}`);
  return false;
}

function checkDeadline(c: Ctx, phaseBefore: Phase): void {
  const phase = phaseOf(c);
  if (phase !== phaseBefore) return; // moved on: the new phase's clock just started
  const limit = phaseDeadlineMs(c.spec, phase, c.st.deadlines);
  const since = Date.parse(c.st.phaseStartTime ?? '');
  if (limit === undefined || !Number.isFinite(since) || c.obs.now.getTime() - since <= limit) {
    if (limit !== undefined && Number.isFinite(since)) requeue(c, Math.max(1, since + limit - c.obs.now.getTime() + 1));
    return;
  }
  // The stall seen now, or else the one recorded last time (e.g. an action that keeps failing).
  const prev = findCondition(c.st.conditions, C.Stalled);
  const why = c.stall ?? (prev?.status === 'True' ? { reason: prev.reason, message: prev.message } : undefined);
  const message = `phase ${phase} exceeded its deadline of ${limit / 1000}s${why ? ` (${why.reason}: ${why.message})` : ''}`;
  // In CuttingOver the target may already run the guest: waiting is the only safe choice.
  if (c.spec.onDeadline === 'Rollback' && phase !== Phases.CuttingOver && !pastPointOfNoReturn(c)) {
    // Drop this pass's forward steps; keep bookkeeping such as AddFinalizer.
    const keep = c.actions.filter((a) => a.type === 'AddFinalizer');
    c.actions.length = 0;
    c.actions.push(...keep);
    rollback(c, 'DeadlineExceeded', message);
  } else {
    c.stall = { reason: 'DeadlineExceeded', message };
  }
}

/** Ready / Reconciling / Stalled per kstatus, plus a Warning event whenever a new stall begins. */
function summarize(c: Ctx, prevStall: { reason: string; status: string } | undefined, specChanged: boolean): void {
  const phase = phaseOf(c);
  if (phase === Phases.Succeeded) {
    cond(c, C.Ready, 'True', 'Succeeded', `VM runs on ${c.spec.targetSite}`);
    cond(c, C.Reconciling, 'False', 'Succeeded', 'migration complete');
    cond(c, C.Stalled, 'False', 'Succeeded', 'migration complete');
  } else if (phase === Phases.Failed || phase === Phases.Aborted) {
    const reason = c.st.failureReason ?? phase;
    const msg = c.st.failureMessage ?? phase;
    cond(c, C.Ready, 'False', reason, msg);
    cond(c, C.Reconciling, 'False', phase, `migration ${phase.toLowerCase()}; ${sourceState(c)}`);
    cond(c, C.Stalled, phase === Phases.Failed ? 'True' : 'False', reason, msg);
  } else if (c.stall) {
    cond(c, C.Ready, 'False', c.stall.reason, c.stall.message);
    cond(c, C.Reconciling, 'False', c.stall.reason, c.stall.message);
    cond(c, C.Stalled, 'True', c.stall.reason, c.stall.message);
  } else {
    const reason = specChanged ? 'SpecChangeIgnored' : c.note?.reason ?? phase;
    const message = specChanged
      ? 'storage or relay changed after the migration started; the running migration keeps the values it started with'
      : c.note?.message ?? `phase ${phase}`;
    cond(c, C.Ready, 'False', phase, `phase ${phase}`);
    cond(c, C.Reconciling, 'True', reason, message);
    cond(c, C.Stalled, 'False', 'Progressing', 'no problem detected');
  }
  const now = findCondition(c.st.conditions, C.Stalled);
  if (now?.status === 'True' && (prevStall?.status !== 'True' || prevStall.reason !== now.reason) && phase !== Phases.Failed) {
    c.events.push({ type: 'Warning', reason: now.reason, message: now.message });
  }
}

export function plan(wm: WanMigration, obs: Observed, opts: PlanOptions = DEFAULT_PLAN_OPTIONS): Plan {
  const spec = effectiveSpec(wm);
  const st: WanMigrationStatus = structuredClone(wm.status ?? {});
  const c: Ctx = { wm, spec, obs, opts, st, actions: [], events: [] };
  const prev = findCondition(st.conditions, C.Stalled);
  const prevStall = prev ? { reason: prev.reason, status: prev.status } : undefined;
  const newGeneration = st.observedGeneration !== wm.metadata.generation;
  if (!st.phase) { st.phase = Phases.Pending; st.phaseStartTime = obs.now.toISOString(); }
  const phase0 = phaseOf(c);

  if (obs.deleting) {
    if (isTerminal(phase0) || pastPointOfNoReturn(c)) {
      // Past the point of no return nothing is rolled back, but what the migration launched for
      // itself still goes: the pre-copy's agents and their credentials (its volumes are the VM's
      // disks now) and the relay's flow registrations. Terminal phases released them already.
      if (!isTerminal(phase0) && obs.hasFinalizer) {
        releaseLaunched(c, false);
      }
      if (obs.hasFinalizer) c.actions.push({ type: 'RemoveFinalizer' });
      return finish(c, prevStall, false);
    }
    if (phase0 === Phases.Pending && !st.migrationID) {
      if (obs.hasFinalizer) c.actions.push({ type: 'RemoveFinalizer' });
      return finish(c, prevStall, false);
    }
    rollback(c, phase0 === Phases.RollingBack ? st.failureReason ?? 'Deleted' : 'Deleted', 'the WanMigration was deleted before the migration completed');
    if (isTerminal(phaseOf(c)) && obs.hasFinalizer) c.actions.push({ type: 'RemoveFinalizer' });
    return finish(c, prevStall, false);
  }

  if (isTerminal(phase0)) return finish(c, prevStall, false);
  if (!obs.hasFinalizer) c.actions.push({ type: 'AddFinalizer' });
  if (phase0 === Phases.RollingBack) { continueRollback(c); return finish(c, prevStall, false); }

  if (spec.abort) {
    if (!pastPointOfNoReturn(c)) { rollback(c, 'Aborted', 'spec.abort was set'); return finish(c, prevStall, false); }
    if (newGeneration) c.events.push({ type: 'Warning', reason: 'AbortIgnored', message: 'spec.abort ignored: the memory migration already completed and the target owns the VM' });
  }

  if (phase0 === Phases.Pending) {
    const blocked = preflight(c);
    if (blocked) {
      c.stall = blocked;
      requeue(c, blockedRetry(c));
      return finish(c, prevStall, false);
    }
    start(c);
  }

  const specChanged = st.startedSpecHash !== undefined && st.startedSpecHash !== obs.specHash;
  if (specChanged && newGeneration) c.events.push({ type: 'Warning', reason: 'SpecChangeIgnored', message: 'storage or relay changed after the migration started; the running migration keeps its original values' });

  for (let i = 0; i < ALL_STEPS; i++) {
    const before = phaseOf(c);
    const moved = step(c);
    if (!moved) { if (!isTerminal(phaseOf(c)) && phaseOf(c) !== Phases.RollingBack) checkDeadline(c, before); break; }
  }
  return finish(c, prevStall, specChanged);
}

const ALL_STEPS = 8;

/** The longest wait between two looks at a migration blocked before its start. */
const MAX_BLOCKED_RETRY_MS = 300_000;

/**
 * When a migration blocked before its start looks again: blockedRetryMs at first, then a quarter
 * of the time it has been blocked, up to five minutes, so that migrations nobody fixes stop costing
 * the API servers a round of reads every 15 s. What is watched (the Site, its Secret, the VM) wakes
 * it at once anyway; this only paces what is not (a peer cluster coming back, RBAC granted).
 */
function blockedRetry(c: Ctx): number {
  const since = Date.parse(c.st.phaseStartTime ?? '');
  const blockedFor = Number.isFinite(since) ? Math.max(0, c.obs.now.getTime() - since) : 0;
  return Math.min(Math.max(c.opts.blockedRetryMs, Math.floor(blockedFor / 4)), Math.max(c.opts.blockedRetryMs, MAX_BLOCKED_RETRY_MS));
}

function finish(c: Ctx, prevStall: { reason: string; status: string } | undefined, specChanged: boolean): Plan {
  const phase = phaseOf(c);
  const band = BANDS[phase];
  const banded = band && c.stepPercent !== undefined ? Math.floor(band[0] + (band[1] - band[0]) * Math.min(100, Math.max(0, c.stepPercent)) / 100) : 0;
  const pct = Math.max(phasePercent(phase, c.obs.sourceVMIM?.phase), banded);
  const prevPct = c.st.progress?.percent ?? 0;
  if (!isTerminal(phase) || phase === Phases.Succeeded) {
    c.st.progress = { ...c.st.progress, percent: phase === Phases.RollingBack ? prevPct : Math.max(prevPct, pct) };
  }
  summarize(c, prevStall, specChanged);
  const limit = isTerminal(phase) || phase === Phases.RollingBack ? undefined : phaseDeadlineMs(c.spec, phase, c.st.deadlines);
  const since = Date.parse(c.st.phaseStartTime ?? '');
  if (limit !== undefined && Number.isFinite(since)) c.st.phaseDeadline = new Date(since + limit).toISOString();
  else delete c.st.phaseDeadline;
  c.st.observedGeneration = c.wm.metadata.generation;
  return {
    actions: c.actions,
    events: c.events,
    status: c.st,
    ...(c.requeue !== undefined && !isTerminal(phase) ? { requeueAfterMs: c.requeue } : {}),
  };
}
