// The WanMigration reconciler: observe both clusters (read-only), plan which provider steps to
// run (pure), run them, plan the rest (pure), execute the plan's actions, write status, record
// Events. Bad input never throws (no crash loop): it becomes a Stalled
// condition with a reason, an Event, and a slow requeue.
import type { Reconciler, ObjectKey, ReconcileContext, ReconcileResult } from '../kube/types.ts';
import type { KubeObject } from '../kube/rest.ts';
import { isNotFound } from '../kube/rest.ts';
import { resolveSpec, type WanMigration } from '../api/wanmigration.ts';
import { DEFAULT_PLAN_OPTIONS, plan } from './phases/plan.ts';
import { planSteps, withStepResults } from './phases/steps.ts';
import { systemClock, type WanMigrationDeps } from './deps.ts';
import { observe } from './observe.ts';
import { execute, runSteps } from './execute.ts';
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
    const p = plan(wm, obs, { ...DEFAULT_PLAN_OPTIONS, ...deps.plan });
    const removeFinalizer = p.actions.some((a) => a.type === 'RemoveFinalizer');
    for (const a of p.actions) {
      if (a.type === 'RemoveFinalizer') continue; // last, after the final status is written
      ctx.log.debug('action', { action: a.type });
      await execute(deps, world, a, ctx.signal);
    }
    if (JSON.stringify(p.status) !== JSON.stringify(wm.status ?? {})) {
      try {
        const updated = await deps.local.patchStatus<KubeObject>(Res.wanMigration, key.namespace, key.name, p.status, ctx.signal);
        // The finalizer patch below carries this resourceVersion (optimistic concurrency).
        wm.metadata.resourceVersion = updated.metadata?.resourceVersion;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    for (const e of p.events) deps.events.event(obj, e.type, e.reason, e.message);
    if (removeFinalizer) await execute(deps, world, { type: 'RemoveFinalizer' }, ctx.signal);
    if (p.status.phase) deps.metrics?.record(key.namespace ?? '', key.name, wm.metadata.uid ?? '', p.status.phase, p.status.startTime, p.status.completionTime);
    if (p.status.phase !== wm.status?.phase) ctx.log.info('phase', { from: wm.status?.phase ?? 'none', to: p.status.phase, reason: p.status.failureReason });
    return p.requeueAfterMs !== undefined ? { requeueAfterMs: p.requeueAfterMs } : undefined;
  }
}

export function newWanMigrationReconciler(deps: WanMigrationDeps): WanMigrationReconciler {
  return new WanMigrationReconciler(deps);
}
