// Reads what the Site reconciler decides on: the Site, and whether the peer cluster's API answers
// with the kubeconfig the Site names (GET /version, timed). Read-only: the link provider is asked
// only when the planner says so (plan.ts planSiteSteps), by the executor (execute.ts).
import { ClusterClientError } from '../../kube/clusters.ts';
import { isNotFound, KubeApiError, type KubeObject } from '../../kube/rest.ts';
import { describeRequestError } from '../../kube/request-errors.ts';
import { Res } from '../../api/resources.ts';
import type { Site } from '../../api/site.ts';
import type { SiteDeps } from '../site.ts';

/** Why the peer cannot be used, as a condition reason and message. */
export interface SiteFailure {
  reason: string;
  message: string;
}

export interface SiteFacts {
  now: Date;
  site: Site;
  /** The peer API server answered /version (round trip measured here), or why not. */
  api: { ok: true; server: string; rttMs: number } | ({ ok: false } & SiteFailure);
  /** Which link provider calls this operator can make (its configuration, not a read). */
  providers: { link: boolean; linkProbe: boolean };
}

/** Turns what went wrong while reaching the peer (or its link) into a reason the user can act on. */
export function siteFailure(e: unknown): SiteFailure {
  if (e instanceof ClusterClientError) return { reason: `Kubeconfig${e.reason.replace(/^Kubeconfig/, '')}`, message: e.message };
  if (e instanceof KubeApiError && (e.code === 401 || e.code === 403)) return { reason: 'ClusterUnauthorized', message: `the API server refused the kubeconfig's credentials: ${describeRequestError(e)}` };
  if (isNotFound(e)) return { reason: 'ClusterAPIUnexpected', message: describeRequestError(e) };
  return { reason: 'ClusterUnreachable', message: describeRequestError(e) };
}

/** undefined when the Site is gone. */
export async function observeSite(deps: SiteDeps, name: string, now: Date, signal: AbortSignal): Promise<SiteFacts | undefined> {
  const obj = await deps.local.tryGet<KubeObject>(Res.site, undefined, name, signal);
  if (!obj) return undefined;
  const site = obj as unknown as Site;
  const providers = { link: !!deps.link, linkProbe: !!deps.link?.probe };
  try {
    const client = await deps.clusters.forSite(site, signal);
    const t0 = performance.now();
    await client.rest.request('GET', '/version', { signal, timeoutMs: deps.probeTimeoutMs ?? 5000 });
    const rttMs = Math.round((performance.now() - t0) * 10) / 10;
    return { now, site, api: { ok: true, server: client.rest.server, rttMs }, providers };
  } catch (e) {
    if (signal.aborted) throw e;
    return { now, site, api: { ok: false, ...siteFailure(e) }, providers };
  }
}
