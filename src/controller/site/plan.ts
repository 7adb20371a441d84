// The Site reconciler's decisions, as pure functions: which link provider calls to make
// (planSiteSteps), then from what was read and what the provider said, the next status, the Event
// to record and when to look again (planSite). Without a link provider, LinkReady only means "the
// target API answered", and says so.
import { setCondition, findCondition, sameConditions } from '../../api/conditions.ts';
import type { ConditionStatus } from '../../api/meta.ts';
import type { LinkMeasurements, StepReport } from '../../api/ports.ts';
import { DEFAULT_PROBE_INTERVAL_SECONDS, SiteConditionTypes, type SiteStatus } from '../../api/site.ts';
import type { EventRecord } from '../phases/actions.ts';
import type { SiteFacts, SiteFailure } from './observe.ts';

export type SiteStep = { type: 'EnsureLink' } | { type: 'ProbeLink' };

/** What the executor brings back from the steps; `failure` stops them (the rest are not run). */
export interface SiteStepResults {
  link?: StepReport;
  measurements?: LinkMeasurements;
  failure?: SiteFailure;
}

export interface SitePlan {
  /** The status to write; undefined when nothing changed. */
  status?: SiteStatus;
  events: EventRecord[];
  requeueAfterMs: number;
}

export interface SitePlanOptions {
  /** Retry interval while the Site is not ready. Default 15 s. */
  notReadyRetryMs?: number;
}

interface Verdict { status: ConditionStatus; reason: string; message: string }

/** The link provider is asked only when the peer's API answered. */
export function planSiteSteps(f: SiteFacts): SiteStep[] {
  if (!f.api.ok || !f.providers.link) return [];
  return [{ type: 'EnsureLink' }, ...(f.providers.linkProbe ? [{ type: 'ProbeLink' } as const] : [])];
}

function linkVerdict(f: SiteFacts, r: SiteStepResults, status: SiteStatus): Verdict {
  if (f.api.ok && !f.providers.link) {
    status.rttMs = f.api.rttMs;
    return { status: 'True', reason: 'ClusterAPIReachable', message: `no link provider configured: rttMs is the API round trip (${f.api.rttMs} ms), not a WAN data-plane measurement; no tunnel was set up` };
  }
  const m = r.measurements ?? {};
  if (m.rttMs !== undefined) status.rttMs = m.rttMs;
  if (m.bandwidthBps !== undefined) status.bandwidthBps = m.bandwidthBps;
  if (m.lossRatio !== undefined) status.lossRatio = m.lossRatio;
  if (!r.link) return { status: 'False', reason: 'LinkNotChecked', message: 'the link provider was not asked' };
  return { status: r.link.state === 'Ready' ? 'True' : 'False', reason: r.link.reason, message: r.link.message };
}

export function planSite(f: SiteFacts, r: SiteStepResults, opts: SitePlanOptions = {}): SitePlan {
  const { site, now } = f;
  const status: SiteStatus = structuredClone(site.status ?? {});
  const gen = site.metadata.generation;
  let api: Verdict;
  let link: Verdict;
  if (f.api.ok) status.lastProbeTime = now.toISOString();
  // A provider that failed counts like an unreachable peer, with the provider's error as reason.
  const failure = !f.api.ok ? f.api : r.failure;
  if (failure) {
    api = { status: 'False', reason: failure.reason, message: failure.message };
    link = api;
  } else {
    const a = f.api as Extract<SiteFacts['api'], { ok: true }>;
    api = { status: 'True', reason: 'ClusterAPIReachable', message: `API server ${a.server} answered /version in ${a.rttMs} ms` };
    link = linkVerdict(f, r, status);
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
  const events: EventRecord[] = prevReady?.status !== ready.status || prevReady?.reason !== ready.reason
    ? [{ type: ready.status === 'True' ? 'Normal' : 'Warning', reason: ready.reason, message: ready.message }] : [];
  const interval = (site.spec.wan?.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
  return {
    ...(changed || status.lastProbeTime !== site.status?.lastProbeTime ? { status } : {}),
    events,
    requeueAfterMs: ready.status === 'True' ? interval : Math.min(interval, opts.notReadyRetryMs ?? 15000),
  };
}
