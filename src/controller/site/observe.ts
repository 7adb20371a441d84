// Reads what the Site reconciler decides on: the Site, whether the peer cluster's API answers
// with the kubeconfig the Site names (GET /version, timed), which of the rights the operator needs
// there those credentials lack (SelfSubjectAccessReviews, which change nothing), and, while the
// Site is being deleted, which WanMigrations still need it. Read-only: the link provider is asked
// only when the planner says so (plan.ts planSiteSteps), by the executor (execute.ts).
import { ClusterClientError } from '../../kube/clusters.ts';
import { isNotFound, KubeApiError, type KubeObject } from '../../kube/rest.ts';
import { describeRequestError } from '../../kube/request-errors.ts';
import { Res } from '../../api/resources.ts';
import { DEFAULT_KUBEVIRT_NAMESPACE, type Site } from '../../api/site.ts';
import { Phases, TERMINAL_PHASES, type WanMigration } from '../../api/wanmigration.ts';
import { peerAccessChecks, type PeerAccessCheck } from '../../api/peer-permissions.ts';
import type { KubeClient } from '../../kube/client.ts';
import type { SiteDeps } from '../site.ts';
import { SITE_FINALIZER } from '../names.ts';
import { deniedAccess, type GrantedAccessCache } from './permissions.ts';

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
  /** The Site has a deletionTimestamp. */
  deleting: boolean;
  /** The Site carries SITE_FINALIZER. */
  hasFinalizer: boolean;
  /** While the Site is being deleted: the WanMigrations (namespace/name) that still need it. */
  usedBy: string[];
  /**
   * When the API answered: the rights the credentials lack in the peer (src/api/peer-permissions.ts;
   * empty when all are granted), or why the peer could not be asked.
   */
  access?: { denied: PeerAccessCheck[]; failure?: SiteFailure };
}

/** Turns what went wrong while reaching the peer (or its link) into a reason the user can act on. */
export function siteFailure(e: unknown): SiteFailure {
  if (e instanceof ClusterClientError) return { reason: `Kubeconfig${e.reason.replace(/^Kubeconfig/, '')}`, message: e.message };
  if (e instanceof KubeApiError && (e.code === 401 || e.code === 403)) return { reason: 'ClusterUnauthorized', message: `the API server refused the request: ${describeRequestError(e)}` };
  if (isNotFound(e)) return { reason: 'ClusterAPIUnexpected', message: describeRequestError(e) };
  return { reason: 'ClusterUnreachable', message: describeRequestError(e) };
}

/**
 * WanMigrations that still need `site`: started (status.migrationID) and not finished. One that
 * has not started needs nothing from it, and one that ended never reaches its target again.
 */
export function migrationsUsing(site: string, migrations: readonly WanMigration[]): string[] {
  return migrations
    .filter((m) => m.spec.targetSite === site && !!m.status?.migrationID && !TERMINAL_PHASES.includes(m.status.phase ?? Phases.Pending))
    .map((m) => `${m.metadata.namespace}/${m.metadata.name}`)
    .sort();
}

async function observeAccess(deps: SiteDeps, site: Site, client: KubeClient, now: Date, signal: AbortSignal, cache?: GrantedAccessCache): Promise<SiteFacts['access']> {
  const checks = peerAccessChecks(site.spec.kubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE, site.spec.allowedNamespaces);
  if (cache?.fresh(client, checks, now.getTime())) return { denied: [] };
  try {
    const denied = await deniedAccess(client, checks, signal, deps.probeTimeoutMs ?? 5000);
    if (denied.length === 0) cache?.remember(client, checks, now.getTime());
    return { denied };
  } catch (e) {
    if (signal.aborted) throw e;
    return { denied: [], failure: { reason: 'PeerPermissionsUnknown', message: `could not ask ${client.rest.server} which rights the credentials hold (SelfSubjectAccessReview): ${describeRequestError(e)}` } };
  }
}

/** undefined when the Site is gone. */
export async function observeSite(deps: SiteDeps, name: string, now: Date, signal: AbortSignal, cache?: GrantedAccessCache): Promise<SiteFacts | undefined> {
  const obj = await deps.local.tryGet<KubeObject>(Res.site, undefined, name, signal);
  if (!obj) return undefined;
  const site = obj as unknown as Site;
  const providers = { link: !!deps.link, linkProbe: !!deps.link?.probe };
  const deleting = !!site.metadata.deletionTimestamp;
  const usedBy = deleting
    ? migrationsUsing(name, (await deps.local.list<KubeObject>(Res.wanMigration, undefined, {}, signal)).items as unknown as WanMigration[])
    : [];
  const meta = { now, site, providers, deleting, hasFinalizer: site.metadata.finalizers?.includes(SITE_FINALIZER) ?? false, usedBy };
  let client: KubeClient;
  let api: SiteFacts['api'];
  try {
    client = await deps.clusters.forSite(site, signal);
    const t0 = performance.now();
    await client.rest.request('GET', '/version', { signal, timeoutMs: deps.probeTimeoutMs ?? 5000 });
    const rttMs = Math.round((performance.now() - t0) * 10) / 10;
    api = { ok: true, server: client.rest.server, rttMs };
  } catch (e) {
    if (signal.aborted) throw e;
    return { ...meta, api: { ok: false, ...siteFailure(e) } };
  }
  return { ...meta, api, access: await observeAccess(deps, site, client, now, signal, cache) };
}
