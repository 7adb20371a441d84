// The Site reconciler: checks that the peer cluster's kubeconfig works, its API answers and the
// credentials hold the rights the operator needs there, asks the link provider (when one is
// configured) about the WAN link, and reports all of it honestly. A finalizer defers the
// deletion of a Site while started WanMigrations still need it.
// Same shape as the WanMigration reconciler: observe (read-only, site/observe.ts) → which
// provider calls to make (pure, site/plan.ts) → make them (site/execute.ts) → the status, Event
// and requeue (pure, site/plan.ts) → write them (site/execute.ts).
import type { Reconciler, ObjectKey, ReconcileContext, ReconcileResult } from '../kube/types.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Clock, EventSink, LinkProvider } from '../api/ports.ts';
import { systemClock, type SiteClusters } from './deps.ts';
import { observeSite } from './site/observe.ts';
import { planSite, planSiteSteps } from './site/plan.ts';
import { executeSitePlan, runSiteSteps } from './site/execute.ts';
import { GrantedAccessCache } from './site/permissions.ts';

export interface SiteDeps {
  local: KubeClient;
  clusters: SiteClusters;
  events: EventSink;
  link?: LinkProvider;
  clock?: Clock;
  /** Bound on the API probe. Default 5 s. */
  probeTimeoutMs?: number;
  /** Retry interval while the Site is not ready. Default 15 s. */
  notReadyRetryMs?: number;
  /** How long a Site found to hold every right in its peer is trusted before the next review. Default 5 min. */
  permissionRecheckMs?: number;
}

export class SiteReconciler implements Reconciler {
  private readonly deps: SiteDeps;
  private readonly access: GrantedAccessCache;

  constructor(deps: SiteDeps) {
    this.deps = deps;
    this.access = new GrantedAccessCache(deps.permissionRecheckMs ?? 5 * 60_000);
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { deps } = this;
    const facts = await observeSite(deps, key.name, (deps.clock ?? systemClock).now(), ctx.signal, this.access);
    if (!facts) return;
    const results = await runSiteSteps(deps, facts.site, planSiteSteps(facts), ctx.signal);
    const p = planSite(facts, results, deps.notReadyRetryMs !== undefined ? { notReadyRetryMs: deps.notReadyRetryMs } : {});
    await executeSitePlan(deps, facts.site, p, ctx.signal);
    return { requeueAfterMs: p.requeueAfterMs };
  }
}

export function newSiteReconciler(deps: SiteDeps): SiteReconciler {
  return new SiteReconciler(deps);
}
