// Whether the credentials a Site names hold, in the peer cluster, every right the operator needs
// there (src/api/peer-permissions.ts): one SelfSubjectAccessReview per (verb, resource,
// namespace), which every authenticated user may create and which the peer's own authorizer
// answers, so Ready means "a migration will not fail on a 403", not only "/version answered".
import type { KubeClient } from '../../kube/client.ts';
import type { PeerAccessCheck } from '../../api/peer-permissions.ts';

const SSAR_PATH = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews';
/** Reviews in flight at once: a Site with many allowed namespaces needs a few hundred. */
const PARALLEL_REVIEWS = 8;

interface AccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string };
}

/** What a review asks: a verb on a resource (one object of it, with `name`), in a namespace ('' for cluster scope or all namespaces). */
export type AccessQuestion = Pick<PeerAccessCheck, 'group' | 'resource' | 'verb' | 'namespace' | 'name'>;

async function allowed(client: KubeClient, c: AccessQuestion, signal: AbortSignal, timeoutMs: number): Promise<boolean> {
  const review = await client.rest.request<AccessReview>('POST', SSAR_PATH, {
    body: {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { group: c.group, resource: c.resource, verb: c.verb, ...(c.namespace ? { namespace: c.namespace } : {}), ...(c.name ? { name: c.name } : {}) } },
    },
    signal,
    timeoutMs,
  });
  return review.status?.allowed === true;
}

/** The checks the peer denies, in the order given. Throws when a review cannot be made at all. */
export async function deniedAccess<T extends AccessQuestion>(client: KubeClient, checks: readonly T[], signal: AbortSignal, timeoutMs: number): Promise<T[]> {
  const denied = new Set<T>();
  let next = 0;
  const worker = async () => {
    while (next < checks.length) {
      const c = checks[next++];
      if (!(await allowed(client, c, signal, timeoutMs))) denied.add(c);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_REVIEWS, checks.length) }, worker));
  return checks.filter((c) => denied.has(c));
}

/**
 * Remembers, per peer client (a rotated kubeconfig makes a new one), which check list was last
 * found fully granted and when, so a healthy Site is re-reviewed every `recheckMs`, not on each
 * probe. A Site lacking rights is reviewed on every probe, so a fix shows at once.
 */
export class GrantedAccessCache {
  private readonly granted = new WeakMap<KubeClient, { key: string; atMs: number }>();
  private readonly recheckMs: number;

  constructor(recheckMs: number) {
    this.recheckMs = recheckMs;
  }

  fresh(client: KubeClient, checks: readonly PeerAccessCheck[], nowMs: number): boolean {
    const hit = this.granted.get(client);
    return !!hit && hit.key === JSON.stringify(checks) && nowMs - hit.atMs < this.recheckMs;
  }

  remember(client: KubeClient, checks: readonly PeerAccessCheck[], nowMs: number): void {
    this.granted.set(client, { key: JSON.stringify(checks), atMs: nowMs });
  }
}
