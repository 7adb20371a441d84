// The WanMigration reconciler: observe both clusters (read-only), plan which provider steps to
// run (pure), run them, plan the rest (pure), execute the plan's actions, write status, record
// Events. Bad input never throws (no crash loop): it becomes a Stalled
// condition with a reason, an Event, and a slow requeue.
//
// Reads come from informer caches (deps.caches). A cache may lag a little, so a plan that would
// destroy or give up something (delete a VMIM or target objects, release storage, remove the
// finalizer, enter RollingBack/Failed/Aborted) is made again from a fresh read of the API before
// any of it runs. Our own writes are remembered until the cache shows them (read-your-writes),
// so a reconcile that follows one quickly does not act on the status it just replaced.
import type { Reconciler, ObjectKey, ReconcileContext, ReconcileResult } from '../kube/types.ts';
import { keyString } from '../kube/types.ts';
import type { KubeObject } from '../kube/rest.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../kube/rest.ts';
import { stripManagedFields } from '../kube/manager.ts';
import { mergePatchFrom } from '../kube/merge-patch.ts';
import { Phases, effectiveSpec, type Phase, type ResolvedSpec, type WanMigration } from '../api/wanmigration.ts';
import { DEFAULT_PLAN_OPTIONS, plan, type Plan } from './phases/plan.ts';
import { planSteps, withStepResults } from './phases/steps.ts';
import { foldPassThroughEvents } from './phases/fold-events.ts';
import { liveReads, systemClock, type MigrationReads, type WanMigrationDeps } from './deps.ts';
import { observe, type World } from './observe.ts';
import { ActionError, execute, runSteps } from './execute.ts';
import { withActionFailure, type ActionFailure } from './phases/action-failure.ts';
import { describeRequestError } from '../kube/request-errors.ts';
import { Res } from '../api/resources.ts';
import type { Action } from './phases/actions.ts';

/**
 * Actions that remove something or let it go: never decided on a cached view alone, because a
 * cache that lags can miss an object that was just created (and look as if it vanished) or a
 * VMIM that just succeeded. FinishSource is not among them: it rests only on positive evidence
 * (the target VMI runs, the receiver left WaitAsReceiver), which a lagging cache cannot invent.
 */
const DESTRUCTIVE: ReadonlySet<Action['type']> = new Set(['DeleteSourceVMIM', 'DeleteTargetVMIM', 'DeleteTargetObjects', 'ReleaseStorage', 'RemoveFinalizer']);
const GIVING_UP: ReadonlySet<Phase> = new Set([Phases.RollingBack, Phases.Failed, Phases.Aborted]);

/** The plan destroys something or gives the migration up: it must rest on fresh reads. */
export function needsFreshRead(wm: WanMigration, p: Plan): boolean {
  if (p.actions.some((a) => DESTRUCTIVE.has(a.type))) return true;
  const to = p.status.phase;
  return to !== undefined && to !== wm.status?.phase && GIVING_UP.has(to);
}

/** Spreads periodic requeues (up to +10 %, at most 5 s later) so that migrations started together do not stay in lockstep. */
export function withJitter(ms: number, random: () => number = Math.random): number {
  return Math.round(ms + random() * Math.min(ms * 0.1, 5000));
}

/** JSON equality that ignores key order (the API server and the planner order fields differently). */
export function sameJson(a: unknown, b: unknown): boolean {
  return stable(a) === stable(b);
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${stable(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

interface Written {
  /** resourceVersions our writes superseded: a cache still showing one of them is behind. */
  stale: Set<string>;
  obj: KubeObject;
  at: number;
}

/** A cache this far behind our write is not behind but broken: forget the write, read the cache. */
const WRITTEN_TTL_MS = 60_000;

interface Pass {
  world: World;
  plan: Plan;
}

export class WanMigrationReconciler implements Reconciler {
  private readonly deps: WanMigrationDeps;
  private readonly written = new Map<string, Written>();

  constructor(deps: WanMigrationDeps) {
    this.deps = deps;
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { deps } = this;
    const k = keyString(key);
    const cached = deps.caches?.reads();
    let obj = await this.read(key, cached, ctx.signal);
    if (!obj) {
      this.written.delete(k);
      deps.metrics?.forget(key.namespace ?? '', key.name);
      return;
    }
    const superseded = new Set<string>();
    if (obj.metadata?.resourceVersion) superseded.add(obj.metadata.resourceVersion);
    let wm = obj as unknown as WanMigration;
    let spec = effectiveSpec(wm);
    const now = (deps.clock ?? systemClock).now();
    let pass = await this.pass(wm, spec, now, cached ?? liveReads(deps.local), ctx);
    if (cached && needsFreshRead(wm, pass.plan)) {
      ctx.log.debug('re-reading from the API before a destructive step', { actions: pass.plan.actions.map((a) => a.type), phase: pass.plan.status.phase });
      const fresh = await deps.local.tryGet<KubeObject>(Res.wanMigration, key.namespace, key.name, ctx.signal);
      if (!fresh) return;
      obj = fresh;
      if (fresh.metadata?.resourceVersion) superseded.add(fresh.metadata.resourceVersion);
      wm = fresh as unknown as WanMigration;
      spec = effectiveSpec(wm);
      pass = await this.pass(wm, spec, now, deps.caches?.reads({ fresh: true }) ?? liveReads(deps.local), ctx);
    }
    const { world, plan: p } = pass;
    const opts = { ...DEFAULT_PLAN_OPTIONS, ...deps.plan };
    const removeFinalizer = p.actions.some((a) => a.type === 'RemoveFinalizer');
    const failure = await this.runActions(world, p.actions, ctx);
    // A failed action still lets the status through (the phase's deadline clock, what did
    // happen), with the failure as a condition; it is retried after blockedRetryMs.
    const { status, events } = failure ? withActionFailure(wm, p, failure, now) : p;
    let latest: KubeObject = obj;
    if (!sameJson(status, wm.status ?? {})) {
      try {
        if (wm.metadata.resourceVersion) superseded.add(wm.metadata.resourceVersion);
        // Fields the new status dropped go as null: a merge patch keeps what it does not name.
        latest = await deps.local.patchStatus<KubeObject>(Res.wanMigration, key.namespace, key.name, mergePatchFrom(wm.status ?? {}, status), ctx.signal);
        // The finalizer patch below carries this resourceVersion (optimistic concurrency).
        wm.metadata.resourceVersion = latest.metadata?.resourceVersion;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    for (const e of foldPassThroughEvents(events)) deps.events.event(latest, e.type, e.reason, e.message);
    if (removeFinalizer && !failure) {
      await execute(deps, world, { type: 'RemoveFinalizer' }, ctx.signal);
      this.written.delete(k);
    } else {
      this.remember(k, obj, wm, latest, superseded);
    }
    if (status.phase) deps.metrics?.record(key.namespace ?? '', key.name, wm.metadata.uid ?? '', status.phase, status.startTime, status.completionTime);
    if (status.phase !== wm.status?.phase) ctx.log.info('phase', { from: wm.status?.phase ?? 'none', to: status.phase, reason: status.failureReason });
    if (failure) return { requeueAfterMs: withJitter(opts.blockedRetryMs) };
    return p.requeueAfterMs !== undefined ? { requeueAfterMs: withJitter(p.requeueAfterMs) } : undefined;
  }

  private async pass(wm: WanMigration, spec: ResolvedSpec, now: Date, reads: MigrationReads, ctx: ReconcileContext): Promise<Pass> {
    const { deps } = this;
    const { facts, world } = await observe(deps, wm, spec, now, ctx.signal, reads);
    const steps = planSteps(wm, facts);
    for (const s of steps) ctx.log.debug('step', { step: s.type });
    const obs = withStepResults(wm, facts, await runSteps(deps, world, steps, ctx.signal));
    return { world, plan: plan(wm, obs, { ...DEFAULT_PLAN_OPTIONS, ...deps.plan }) };
  }

  /** The WanMigration from the cache (a private copy), or our newer write if the cache is behind. */
  private async read(key: ObjectKey, reads: MigrationReads | undefined, signal: AbortSignal): Promise<KubeObject | undefined> {
    if (!reads) return this.deps.local.tryGet<KubeObject>(Res.wanMigration, key.namespace, key.name, signal);
    const cached = await reads.local.get<KubeObject>(Res.wanMigration, key.namespace, key.name, signal);
    const k = keyString(key);
    const w = this.written.get(k);
    if (w && Date.now() - w.at < WRITTEN_TTL_MS && cached?.metadata?.resourceVersion && w.stale.has(cached.metadata.resourceVersion)) return structuredClone(w.obj);
    if (w) this.written.delete(k);
    return cached ? structuredClone(cached) : undefined;
  }

  /** Remembers what this reconcile wrote (finalizer and status) until the cache catches up. */
  private remember(k: string, read: KubeObject, wm: WanMigration, latest: KubeObject, superseded: Set<string>): void {
    const rv = wm.metadata.resourceVersion;
    if (!rv || superseded.has(rv)) return; // nothing written
    superseded.delete(rv);
    // Only the finalizer changed: the object read, with the metadata the patch returned.
    const obj = latest === read ? { ...read, metadata: { ...read.metadata, resourceVersion: rv, finalizers: wm.metadata.finalizers } } : latest;
    const prev = this.written.get(k);
    for (const s of prev?.stale ?? []) superseded.add(s);
    const now = Date.now();
    // Entries of migrations that are not reconciled again (finished) would stay forever.
    if (this.written.size > 64) for (const [key, w] of this.written) if (now - w.at > WRITTEN_TTL_MS) this.written.delete(key);
    this.written.set(k, { stale: superseded, obj: stripManagedFields(obj), at: now });
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
