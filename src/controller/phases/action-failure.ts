// What the status says when an action of the plan failed (a create refused by the target's API
// server, a delete that timed out…). Pure, like plan.ts. The status the plan computed is still
// written, so a phase that began in this pass starts its deadline clock, minus what only the
// failed action (and the ones after it, which did not run) would have made true; the failure
// itself goes into the conditions with the API server's message, before the next retry.
import { findCondition, setCondition } from '../../api/conditions.ts';
import { ConditionTypes as C, TERMINAL_PHASES, type WanMigration, type WanMigrationStatus } from '../../api/wanmigration.ts';
import type { Action, EventRecord } from './actions.ts';

export interface ActionFailure {
  /** Index in the plan's actions of the one that failed; the later ones did not run. */
  index: number;
  message: string;
}

/** Condition reason per failed action (also the Event reason). */
export const ACTION_FAILURE_REASON: Record<Action['type'], string> = {
  AddFinalizer: 'FinalizerUpdateFailed',
  RemoveFinalizer: 'FinalizerUpdateFailed',
  EnsureCATrust: 'CATrustUpdateFailed',
  EnsureTargetObjects: 'TargetObjectCreateFailed',
  CreateTargetVMIM: 'TargetVMIMCreateFailed',
  CreateSourceVMIM: 'SourceVMIMCreateFailed',
  DeleteSourceVMIM: 'CleanupFailed',
  DeleteTargetVMIM: 'CleanupFailed',
  DeleteTargetObjects: 'CleanupFailed',
  ReleaseStorage: 'StorageReleaseFailed',
  ReleaseRelayFlows: 'RelayReleaseFailed',
  FinishSource: 'SourceFinishFailed',
};

/** The step condition an action works towards, when it has one. */
const STEP_OF: Partial<Record<Action['type'], string>> = {
  EnsureCATrust: C.TargetPrepared,
  EnsureTargetObjects: C.TargetPrepared,
  CreateTargetVMIM: C.MemoryMigrated,
  CreateSourceVMIM: C.MemoryMigrated,
  FinishSource: C.CutoverComplete,
};

export function withActionFailure(
  wm: WanMigration, planned: { actions: readonly Action[]; events: readonly EventRecord[]; status: WanMigrationStatus }, failure: ActionFailure, now: Date,
): { status: WanMigrationStatus; events: EventRecord[] } {
  const prev = wm.status ?? {};
  const st: WanMigrationStatus = structuredClone(planned.status);
  const failed = planned.actions[failure.index];
  // A VMIM name goes into status when its create is planned (a later reconcile that misses it
  // concludes that someone deleted it); one that was never created must not be recorded.
  for (const a of planned.actions.slice(failure.index)) {
    const side = a.type === 'CreateTargetVMIM' ? 'target' : a.type === 'CreateSourceVMIM' ? 'source' : undefined;
    if (!side) continue;
    const vmims = { ...st.vmims };
    if (prev.vmims?.[side] !== undefined) vmims[side] = prev.vmims[side];
    else delete vmims[side];
    st.vmims = vmims;
  }
  let events = [...planned.events];
  // An end state is final: a migration whose last clean-up step failed is not over yet.
  if (st.phase && TERMINAL_PHASES.includes(st.phase) && st.phase !== prev.phase) {
    const ended = st.phase;
    events = events.filter((e) => e.reason !== ended);
    st.phase = prev.phase;
    st.phaseStartTime = prev.phaseStartTime;
    st.completionTime = prev.completionTime;
    for (const k of ['phase', 'phaseStartTime', 'completionTime'] as const) if (st[k] === undefined) delete st[k];
  }
  const reason = ACTION_FAILURE_REASON[failed.type];
  const message = failure.message;
  const gen = wm.metadata.generation;
  const set = (type: string, status: 'True' | 'False') => { st.conditions = setCondition(st.conditions, { type, status, reason, message }, gen, now); };
  const step = STEP_OF[failed.type];
  if (step) set(step, 'False');
  set(C.Ready, 'False');
  set(C.Reconciling, 'False');
  set(C.Stalled, 'True');
  const was = findCondition(prev.conditions, C.Stalled);
  if (was?.status !== 'True' || was.reason !== reason || was.message !== message) events.push({ type: 'Warning', reason, message });
  return { status: st, events };
}
