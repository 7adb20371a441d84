// The WanMigration reconciler: observe both clusters (read-only), plan which provider steps to
// run (pure), run them, plan the rest (pure), execute the plan's actions, write status, record
// Events. Bad input never throws (no crash loop): it becomes a Stalled
// condition with a reason, an Event, and a slow requeue.
import type { Reconciler, ObjectKey, ReconcileContext, ReconcileResult } from '../kube/types.ts';
import type { KubeObject } from '../kube/rest.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../kube/rest.ts';
import { resolveSpec, type WanMigration } from '../api/wanmigration.ts';
import { DEFAULT_PLAN_OPTIONS, plan } from './phases/plan.ts';
import { planSteps, withStepResults } from './phases/steps.ts';
import { systemClock, type WanMigrationDeps } from './deps.ts';
import { observe, type World } from './observe.ts';
import { ActionError, execute, runSteps } from './execute.ts';
import { withActionFailure, type ActionFailure } from './phases/action-failure.ts';
import type { Action } from './phases/actions.ts';
import { describeRequestError } from '../kube/request-errors.ts';
import { Res } from '../api/resources.ts';

export class WanMigrationReconciler implements Reconciler {
  private readonly deps: WanMigrationDeps;

  constructor(deps: WanMigrationDeps) {
    this.deps = deps;
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { deps } = this;
    const obj = await deps.local.tryGet<KubeObject>(Res.wanMigration, key.namespace, key.name, ctx.signal);
    if (!obj) {
      deps.metrics?.forget(key.namespace ?? '', key.name);
      return;
    }
    const wm = obj as unknown as WanMigration;
    const spec = resolveSpec(wm.spec);
    const now = (deps.clock ?? systemClock).now();
    const { facts, world } = await observe(deps, wm, spec, now, ctx.signal);
    const steps = planSteps(wm, facts);
    for (const s of steps) ctx.log.debug('step', { step: s.type });
    const obs = withStepResults(wm, facts, await runSteps(deps, world, steps, ctx.signal));
    const opts = { ...DEFAULT_PLAN_OPTIONS, ...deps.plan };
    const p = plan(wm, obs, opts);
    const removeFinalizer = p.actions.some((a) => a.type === 'RemoveFinalizer');
    const failure = await this.runActions(world, p.actions, ctx);
    // A failed action still lets the status through (the phase's deadline clock, what did
    // happen), with the failure as a condition; it is retried after blockedRetryMs.
    const { status, events } = failure ? withActionFailure(wm, p, failure, now) : p;
    if (JSON.stringify(status) !== JSON.stringify(wm.status ?? {})) {
      try {
        const updated = await deps.local.patchStatus<KubeObject>(Res.wanMigration, key.namespace, key.name, status, ctx.signal);
        // The finalizer patch below carries this resourceVersion (optimistic concurrency).
        wm.metadata.resourceVersion = updated.metadata?.resourceVersion;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    for (const e of events) deps.events.event(obj, e.type, e.reason, e.message);
    if (removeFinalizer && !failure) await execute(deps, world, { type: 'RemoveFinalizer' }, ctx.signal);
    if (status.phase) deps.metrics?.record(key.namespace ?? '', key.name, wm.metadata.uid ?? '', status.phase, status.startTime, status.completionTime);
    if (status.phase !== wm.status?.phase) ctx.log.info('phase', { from: wm.status?.phase ?? 'none', to: status.phase, reason: status.failureReason });
    if (failure) return { requeueAfterMs: opts.blockedRetryMs };
    return p.requeueAfterMs !== undefined ? { requeueAfterMs: p.requeueAfterMs } : undefined;
  }

  /** Runs the actions in order (RemoveFinalizer waits for the status write); stops at the first that fails. */
  private async runActions(world: World, actions: readonly Action[], ctx: ReconcileContext): Promise<ActionFailure | undefined> {
    for (const [index, a] of actions.entries()) {
      if (a.type === 'RemoveFinalizer') continue;
      ctx.log.debug('action', { action: a.type });
      try {
        await execute(this.deps, world, a, ctx.signal);
      } catch (e) {
        // A stale resourceVersion (409 Conflict) only means "read again": the workqueue retries
        // at once, with nothing to report. Aborts end the reconcile.
        if (ctx.signal.aborted || (isConflict(e) && !isAlreadyExists(e))) throw e;
        const message = e instanceof ActionError ? e.message : `${a.type}: ${describeRequestError(e)}`;
        ctx.log.warn('action failed', { action: a.type, err: message });
        return { index, message };
      }
    }
    return undefined;
  }
}

export function newWanMigrationReconciler(deps: WanMigrationDeps): WanMigrationReconciler {
  return new WanMigrationReconciler(deps);
}
