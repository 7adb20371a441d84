// The Site reconciler: checks that the peer cluster's kubeconfig works and its API answers, asks
// the link provider (when one is configured) about the WAN link, and reports both honestly:
// without a link provider, LinkReady only means "the target API answered" and says so.
import type { Reconciler, ObjectKey, ReconcileContext, ReconcileResult } from '../kube/types.ts';
import { isNotFound, KubeApiError, type KubeObject } from '../kube/rest.ts';
import { setCondition, findCondition, sameConditions } from '../api/conditions.ts';
import { DEFAULT_PROBE_INTERVAL_SECONDS, SiteConditionTypes, type Site, type SiteStatus } from '../api/site.ts';
import type { ConditionStatus } from '../api/meta.ts';
import { ClusterClientError } from '../kube/clusters.ts';
import type { Clock, EventSink, LinkProvider } from '../api/ports.ts';
import { systemClock, type SiteClusters } from './deps.ts';
import type { KubeClient } from '../kube/client.ts';
import { Res } from '../api/resources.ts';

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
}

interface Verdict { status: ConditionStatus; reason: string; message: string }

export class SiteReconciler implements Reconciler {
  private readonly deps: SiteDeps;

  constructor(deps: SiteDeps) {
    this.deps = deps;
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { deps } = this;
    const obj = await deps.local.tryGet<KubeObject>(Res.site, undefined, key.name, ctx.signal);
    if (!obj) return;
    const site = obj as unknown as Site;
    const now = (deps.clock ?? systemClock).now();
    const status: SiteStatus = structuredClone(site.status ?? {});
    const gen = site.metadata.generation;
    let api: Verdict;
    let link: Verdict;
    try {
      const client = await deps.clusters.forSite(site, ctx.signal);
      const t0 = performance.now();
      await client.rest.request('GET', '/version', { signal: ctx.signal, timeoutMs: deps.probeTimeoutMs ?? 5000 });
      const rttMs = Math.round((performance.now() - t0) * 10) / 10;
      api = { status: 'True', reason: 'ClusterAPIReachable', message: `API server ${client.rest.server} answered /version in ${rttMs} ms` };
      status.lastProbeTime = now.toISOString();
      if (deps.link) {
        const r = await deps.link.ensure({ site }, ctx.signal);
        link = { status: r.state === 'Ready' ? 'True' : 'False', reason: r.reason, message: r.message };
        const m = deps.link.probe ? await deps.link.probe(site, ctx.signal) : {};
        if (m.rttMs !== undefined) status.rttMs = m.rttMs;
        if (m.bandwidthBps !== undefined) status.bandwidthBps = m.bandwidthBps;
        if (m.lossRatio !== undefined) status.lossRatio = m.lossRatio;
      } else {
        status.rttMs = rttMs;
        link = { status: 'True', reason: 'ClusterAPIReachable', message: `no link provider configured: rttMs is the API round trip (${rttMs} ms), not a WAN data-plane measurement; no tunnel was set up` };
      }
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      if (e instanceof ClusterClientError) api = { status: 'False', reason: `Kubeconfig${e.reason.replace(/^Kubeconfig/, '')}`, message: e.message };
      else if (e instanceof KubeApiError && (e.code === 401 || e.code === 403)) api = { status: 'False', reason: 'ClusterUnauthorized', message: e.message };
      else if (isNotFound(e)) api = { status: 'False', reason: 'ClusterAPIUnexpected', message: e instanceof Error ? e.message : String(e) };
      else api = { status: 'False', reason: 'ClusterUnreachable', message: e instanceof Error ? `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}` : String(e) };
      link = { status: 'False', reason: api.reason, message: api.message };
    }
    const ready: Verdict = api.status === 'True' && link.status === 'True'
      ? { status: 'True', reason: 'Ready', message: api.message }
      : api.status !== 'True' ? api : link;
    const prevReady = findCondition(status.conditions, SiteConditionTypes.Ready);
    let conds = setCondition(status.conditions, { type: SiteConditionTypes.LinkReady, ...link }, gen, now);
    conds = setCondition(conds, { type: SiteConditionTypes.Ready, ...ready }, gen, now);
    const changed = !sameConditions(conds, site.status?.conditions) || status.observedGeneration !== gen;
    status.conditions = conds;
    status.observedGeneration = gen;
    if (changed || status.lastProbeTime !== site.status?.lastProbeTime) {
      await deps.local.patchStatus(Res.site, undefined, key.name, status, ctx.signal).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
    }
    if (prevReady?.status !== ready.status || prevReady?.reason !== ready.reason) {
      deps.events.event(obj, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
    }
    const interval = (site.spec.wan?.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
    return { requeueAfterMs: ready.status === 'True' ? interval : Math.min(interval, deps.notReadyRetryMs ?? 15000) };
  }
}

export function newSiteReconciler(deps: SiteDeps): SiteReconciler {
  return new SiteReconciler(deps);
}
