// The Site reconciler's decisions, as pure functions: which link provider calls to make
// (planSiteSteps), then from what was read and what the provider said, the next status, the Event
// to record, the finalizer and when to look again (planSite). Without a link provider, LinkReady
// only means "the target API answered", and says so. Ready also needs every right the operator
// needs in the peer, and is False (DeletionDeferred) while a Site in use waits to be deleted.
import { setCondition, findCondition, sameConditions } from '../../api/conditions.ts';
import type { ConditionStatus } from '../../api/meta.ts';
import type { LinkMeasurements, StepReport } from '../../api/ports.ts';
import { describeResource, type PeerAccessCheck } from '../../api/peer-permissions.ts';
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
  /** Add SITE_FINALIZER (before the status write) or remove it (the Site then goes away). */
  finalizer?: 'Add' | 'Remove';
}

export interface SitePlanOptions {
  /** Retry interval while the Site is not ready. Default 15 s. */
  notReadyRetryMs?: number;
}

interface Verdict { status: ConditionStatus; reason: string; message: string }

/** The link provider is asked only when the peer's API answered, and not for a Site on its way out. */
export function planSiteSteps(f: SiteFacts): SiteStep[] {
  if (!f.api.ok || !f.providers.link || (f.deleting && f.usedBy.length === 0)) return [];
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

/** At most this many missing rights are named in a message; the rest are counted. */
const MAX_LISTED = 12;

/** "virtualmachines.kubevirt.io (create, delete) in all namespaces; get namespaces": denied checks, grouped. */
export function describeDenied(denied: readonly PeerAccessCheck[]): string {
  const groups = new Map<string, { first: PeerAccessCheck; verbs: string[] }>();
  for (const c of denied) {
    const key = JSON.stringify([c.group, c.resource, c.name, c.namespace, c.scope]);
    const g = groups.get(key);
    if (g) g.verbs.push(c.verb);
    else groups.set(key, { first: c, verbs: [c.verb] });
  }
  const parts = [...groups.values()].map(({ first: c, verbs }) => {
    const what = `${describeResource(c)} (${verbs.join(', ')})`;
    return c.namespace ? `${what} in namespace ${c.namespace}` : c.scope === 'Cluster' ? what : `${what} in all namespaces`;
  });
  const more = parts.length - MAX_LISTED;
  return parts.slice(0, MAX_LISTED).join('; ') + (more > 0 ? `; and ${more} more` : '');
}

function accessVerdict(f: SiteFacts): Verdict | undefined {
  const a = f.access;
  if (!a) return undefined;
  if (a.failure) return { status: 'False', reason: a.failure.reason, message: a.failure.message };
  if (a.denied.length === 0) return undefined;
  const ref = f.site.spec.kubeconfigSecretRef;
  const server = f.api.ok ? f.api.server : 'the peer';
  return {
    status: 'False',
    reason: 'PeerPermissionsMissing',
    message: `the credentials in Secret ${ref.namespace}/${ref.name} lack rights the operator needs on ${server}: ${describeDenied(a.denied)}`,
  };
}

export function planSite(f: SiteFacts, r: SiteStepResults, opts: SitePlanOptions = {}): SitePlan {
  const { site, now } = f;
  const interval = (site.spec.wan?.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
  // Nothing needs it any more: let it go; there is no status left to write.
  if (f.deleting && f.usedBy.length === 0) return { events: [], requeueAfterMs: interval, ...(f.hasFinalizer ? { finalizer: 'Remove' as const } : {}) };
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
  const access = api.status === 'True' ? accessVerdict(f) : undefined;
  const deferred: Verdict | undefined = f.deleting
    ? { status: 'False', reason: 'DeletionDeferred', message: `the Site is being deleted; its deletion waits until these WanMigrations no longer need it (they finish, fail or are deleted): ${f.usedBy.join(', ')}` }
    : undefined;
  // The first thing that is not right, in this order, is why the Site is not Ready.
  const ready: Verdict = [deferred, api, access, link].find((v) => v && v.status !== 'True')
    ?? { status: 'True', reason: 'Ready', message: `${api.message}; the credentials hold every right the operator needs there` };
  const prevReady = findCondition(status.conditions, SiteConditionTypes.Ready);
  let conds = setCondition(status.conditions, { type: SiteConditionTypes.LinkReady, ...link }, gen, now);
  conds = setCondition(conds, { type: SiteConditionTypes.Ready, ...ready }, gen, now);
  const changed = !sameConditions(conds, site.status?.conditions) || status.observedGeneration !== gen;
  status.conditions = conds;
  status.observedGeneration = gen;
  const events: EventRecord[] = prevReady?.status !== ready.status || prevReady?.reason !== ready.reason
    ? [{ type: ready.status === 'True' ? 'Normal' : 'Warning', reason: ready.reason, message: ready.message }] : [];
  return {
    ...(changed || status.lastProbeTime !== site.status?.lastProbeTime ? { status } : {}),
    events,
    requeueAfterMs: ready.status === 'True' ? interval : Math.min(interval, opts.notReadyRetryMs ?? 15000),
    ...(!f.deleting && !f.hasFinalizer ? { finalizer: 'Add' as const } : {}),
  };
}
