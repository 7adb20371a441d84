// Authentication and authorization of /metrics (and the site gateway's /status) requests by the
// API server, as kubebuilder v4's controller-runtime filter
// (filters.WithAuthenticationAndAuthorization) does: the bearer token goes to a TokenReview, the
// user it names to a SubjectAccessReview for `get` on the non-resource URL of the request. So
// scrapers need a ServiceAccount token and a binding to a role like the chart's
// `<release>-metrics-reader`; the serving process (the operator, the gateway) needs `create` on
// tokenreviews and subjectaccessreviews. Tokens are never logged; the cache is keyed by their SHA-256.
import { createHash } from 'node:crypto';
import type { RestClient } from './rest.ts';
import { logger } from '../util/log.ts';

export type MetricsDecision =
  | { status: 200; user: string }
  | { status: 401 | 403 | 500; message: string };

export interface MetricsAuthorizer {
  /** `authorization` is the request's Authorization header; `path` the URL path. */
  check(authorization: string | undefined, path: string, signal?: AbortSignal): Promise<MetricsDecision>;
}

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReviewStatus { authenticated?: boolean; user?: UserInfo; error?: string }
interface AccessReviewStatus { allowed?: boolean; denied?: boolean; reason?: string }

export interface KubeMetricsAuthOptions {
  /** How long an answer is reused for the same token and path (kube's delegating authn/authz
   *  use minutes for "allowed" and seconds for "denied"). Defaults: 2 min and 10 s. */
  allowedTtlMs?: number;
  deniedTtlMs?: number;
  /** Bound on cached tokens (oldest dropped first). Default 1024. */
  maxEntries?: number;
  now?: () => number;
}

const log = logger('metrics-auth');

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** Asks the API server that `rest` talks to; answers are cached per token and path. */
export function kubeMetricsAuth(rest: RestClient, o: KubeMetricsAuthOptions = {}): MetricsAuthorizer & { reviews: () => number } {
  const now = o.now ?? Date.now;
  const cache = new Map<string, { decision: MetricsDecision; until: number }>();
  let reviews = 0;

  async function decide(token: string, path: string, signal?: AbortSignal): Promise<MetricsDecision> {
    reviews++;
    const tr = await rest.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }, signal, timeoutMs: 10_000,
    });
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user?.username) return { status: 401, message: 'Unauthorized' };
    const sar = await rest.request<{ status?: AccessReviewStatus }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: {
        apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
        spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
      },
      signal, timeoutMs: 10_000,
    });
    if (sar.status?.allowed) return { status: 200, user: user.username };
    return { status: 403, message: `Forbidden: user "${user.username}" may not get path "${path}"` };
  }

  return {
    reviews: () => reviews,
    async check(authorization, path, signal) {
      const token = bearer(authorization);
      if (!token) return { status: 401, message: 'Unauthorized: a bearer token is required' };
      const key = `${createHash('sha256').update(token).digest('hex')} ${path}`;
      const hit = cache.get(key);
      if (hit && hit.until > now()) return hit.decision;
      let decision: MetricsDecision;
      try {
        decision = await decide(token, path, signal);
      } catch (err) {
        // Not cached: the next scrape asks again.
        log.warn('metrics request not authorized: API server review failed', { error: err instanceof Error ? err.message : String(err) });
        return { status: 500, message: 'Internal Server Error: authentication or authorization failed' };
      }
      cache.delete(key);
      cache.set(key, { decision, until: now() + (decision.status === 200 ? o.allowedTtlMs ?? 120_000 : o.deniedTtlMs ?? 10_000) });
      while (cache.size > (o.maxEntries ?? 1024)) cache.delete(cache.keys().next().value as string);
      return decision;
    },
  };
}
