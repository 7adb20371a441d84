// Clients for remote clusters, built from kubeconfig Secrets (key `kubeconfig`) that Sites
// reference. Secrets are read through an informer per namespace, so a rotated kubeconfig is picked
// up on the next call (the cached client is keyed by the Secret's resourceVersion) and listeners
// are told so that controllers can re-reconcile. Kubeconfig contents never reach logs or errors.
import { KubeConfig } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { KubeClient, Resources } from './client.ts';
import { Informer, restListWatcher, errMessage, type InformerOptions } from './informer.ts';
import type { KubeObject, RestClientOptions } from './rest.ts';
import { logger, type Logger } from '../util/log.ts';

export { KubeClient, hasFinalizer, Resources } from './client.ts';
export type { Ref, ApplyOptions, DeleteOptions, ListOptions } from './client.ts';

export interface SecretRef {
  namespace: string;
  name: string;
  /** Data key holding the kubeconfig. Default "kubeconfig". */
  key?: string;
}

/**
 * SecretUnreadable: the Secret cache of the namespace did not fill within its bound (no right to
 * list/watch Secrets there, or the API server does not answer); SecretNamespaceNotAllowed: the
 * caller's policy forbids the namespace (the controllers accept only the operator's own).
 */
export type ClusterClientErrorReason = 'SecretNotFound' | 'KubeconfigMissing' | 'KubeconfigInvalid' | 'SecretUnreadable' | 'SecretNamespaceNotAllowed';

/** Bad or missing credentials: retrying will not help until the Secret changes. */
export class ClusterClientError extends Error {
  readonly reason: ClusterClientErrorReason;

  constructor(reason: ClusterClientErrorReason, message: string) {
    super(message);
    this.name = 'ClusterClientError';
    this.reason = reason;
  }
}

interface Secret extends KubeObject {
  data?: Record<string, string>;
}

interface CachedClient {
  resourceVersion: string;
  key: string;
  client: KubeClient;
}

export interface ClusterClientsOptions {
  local: KubeClient;
  informerOptions?: Omit<InformerOptions, 'name'>;
  /** Rate limits, user agent and metrics of the clients built here. */
  clientOptions?: RestClientOptions;
  /**
   * Bound on waiting for a namespace's Secret cache to fill, counted from the informer's start:
   * once it has passed, callers fail at once (SecretUnreadable) until the cache fills. Default 10 s.
   */
  secretSyncTimeoutMs?: number;
  log?: Logger;
}

const DEFAULT_SECRET_SYNC_TIMEOUT_MS = 10_000;

/**
 * kubeconfig entries a Site's Secret may not use: each runs a command in the operator (exec,
 * auth-provider), reads a file of the operator's, such as its own ServiceAccount token, to send it
 * to the peer (the *-file and path forms; client-node reads token-file while loading), or skips
 * verifying the peer's API server. The -data forms and tokens carry the same credentials inline.
 */
const USER_KEYS_REFUSED = ['exec', 'auth-provider', 'token-file', 'tokenFile', 'client-certificate', 'client-key'];
const CLUSTER_KEYS_REFUSED = ['certificate-authority', 'insecure-skip-tls-verify'];

/** The refused entries the kubeconfig uses ("users[0].user.exec", ...): names only, never values. */
export function refusedKubeconfigEntries(doc: unknown): string[] {
  const out: string[] = [];
  const entries = (list: unknown, inner: string, refused: string[]): void => {
    if (!Array.isArray(list)) return;
    list.forEach((e: unknown, i) => {
      const body = typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[inner] : undefined;
      if (typeof body !== 'object' || body === null) return;
      for (const k of refused) {
        const v = (body as Record<string, unknown>)[k];
        if (v !== undefined && v !== null && v !== false && v !== '') out.push(`${inner}s[${i}].${inner}.${k}`);
      }
    });
  };
  if (typeof doc === 'object' && doc !== null) {
    const d = doc as Record<string, unknown>;
    entries(d.users, 'user', USER_KEYS_REFUSED);
    entries(d.clusters, 'cluster', CLUSTER_KEYS_REFUSED);
  }
  return out;
}

/** Builds a KubeConfig from kubeconfig YAML, with an error that never echoes the contents. */
export function kubeConfigFromString(text: string, what: string): KubeConfig {
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch {
    // js-yaml errors quote the offending lines, which may hold keys or tokens.
    throw new ClusterClientError('KubeconfigInvalid', `${what}: kubeconfig is not valid YAML`);
  }
  // Checked before client-node loads it: loading already reads token-file.
  const refused = refusedKubeconfigEntries(doc);
  if (refused.length) {
    throw new ClusterClientError('KubeconfigInvalid', `${what}: kubeconfig uses ${refused.join(', ')}, which a peer kubeconfig (a Site's, or the gateway's) may not `
      + '(commands or files of this process, or an unverified API server): use certificate-authority-data with a token or client-certificate-data/client-key-data');
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
  } catch {
    // js-yaml errors quote the offending lines, which may hold keys or tokens.
    throw new ClusterClientError('KubeconfigInvalid', `${what}: kubeconfig is not valid YAML`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new ClusterClientError('KubeconfigInvalid', `${what}: kubeconfig has no current context with a cluster server`);
  try {
    new URL(cluster.server);
  } catch {
    throw new ClusterClientError('KubeconfigInvalid', `${what}: kubeconfig cluster server is not a URL`);
  }
  return kc;
}

export class ClusterClients {
  readonly local: KubeClient;
  private readonly opts: ClusterClientsOptions;
  private readonly log: Logger;
  private readonly informers = new Map<string, Informer<Secret>>();
  private readonly startedAt = new Map<string, number>();
  private readonly cache = new Map<string, CachedClient>();
  private readonly listeners = new Set<(ref: { namespace: string; name: string }) => void>();

  constructor(opts: ClusterClientsOptions) {
    this.opts = opts;
    this.local = opts.local;
    this.log = opts.log ?? logger('cluster-clients');
  }

  /** The Secret informer of `namespace` (started on first use), e.g. for a controller watch. */
  secretInformer(namespace: string): Informer<Secret> {
    let inf = this.informers.get(namespace);
    if (!inf) {
      inf = new Informer<Secret>(restListWatcher<Secret>(this.local.rest, Resources.secret, { namespace }), {
        ...this.opts.informerOptions, name: `secrets@${namespace}`,
      });
      const onChange = (s: Secret) => this.secretChanged(namespace, s.metadata?.name ?? '', s.metadata?.resourceVersion);
      inf.addEventHandler({ onUpdate: (_o, n) => onChange(n), onDelete: (s) => onChange({ ...s, metadata: { ...s.metadata, resourceVersion: '' } }), onAdd: onChange });
      this.informers.set(namespace, inf);
      this.startedAt.set(namespace, Date.now());
      inf.start();
    }
    return inf;
  }

  /** Listeners hear about every change of a Secret that a cached client was built from. */
  onSecretChange(listener: (ref: { namespace: string; name: string }) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The client for the cluster whose kubeconfig is in `ref`. Throws ClusterClientError for a missing
   * Secret/key or an invalid kubeconfig. Reachability is not checked here (the first call tells).
   */
  async forSecret(ref: SecretRef, clusterName = `${ref.namespace}/${ref.name}`, signal?: AbortSignal): Promise<KubeClient> {
    const inf = this.secretInformer(ref.namespace);
    const what = `Secret ${ref.namespace}/${ref.name}`;
    if (!(await this.waitForSecrets(ref.namespace, inf, signal))) {
      if (signal?.aborted) throw new Error('aborted while waiting for the Secret cache');
      const s = Math.round(this.syncTimeoutMs() / 1000);
      throw new ClusterClientError('SecretUnreadable', `${what}: the operator could not list the Secrets of namespace ${ref.namespace} within ${s}s `
        + '(it needs get, list and watch on Secrets there, and the API server must answer); it keeps trying');
    }
    const secret = inf.getByName(ref.namespace, ref.name);
    if (!secret) throw new ClusterClientError('SecretNotFound', `${what} not found`);
    const dataKey = ref.key ?? 'kubeconfig';
    const rv = secret.metadata?.resourceVersion ?? '';
    const cacheKey = `${ref.namespace}/${ref.name}`;
    const hit = this.cache.get(cacheKey);
    if (hit && hit.resourceVersion === rv && hit.key === dataKey) return hit.client;
    const b64 = secret.data?.[dataKey];
    if (!b64) throw new ClusterClientError('KubeconfigMissing', `${what} has no key "${dataKey}"`);
    const kc = kubeConfigFromString(Buffer.from(b64, 'base64').toString('utf8'), what);
    const client = new KubeClient(kc, clusterName, this.opts.clientOptions);
    if (hit) void hit.client.rest.close();
    this.cache.set(cacheKey, { resourceVersion: rv, key: dataKey, client });
    this.log.info('built cluster client', { cluster: clusterName, secret: cacheKey, server: client.rest.server });
    return client;
  }

  private syncTimeoutMs(): number {
    return this.opts.secretSyncTimeoutMs ?? DEFAULT_SECRET_SYNC_TIMEOUT_MS;
  }

  /**
   * True once the namespace's Secret cache has filled. A wait never outlasts the bound counted from
   * the informer's start, so a namespace that cannot be read costs each caller at most that once,
   * then nothing: the informer keeps retrying in the background and the next call sees it fill.
   */
  private async waitForSecrets(namespace: string, inf: Informer<Secret>, signal?: AbortSignal): Promise<boolean> {
    if (inf.hasSynced()) return true;
    const left = (this.startedAt.get(namespace) ?? 0) + this.syncTimeoutMs() - Date.now();
    if (left <= 0) return false;
    const bound = AbortSignal.timeout(left);
    return inf.waitForSync(signal ? AbortSignal.any([signal, bound]) : bound);
  }

  hasSynced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced());
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await Promise.all([...this.cache.values()].map((c) => c.client.rest.close()));
    this.cache.clear();
  }

  private secretChanged(namespace: string, name: string, rv: string | undefined): void {
    const key = `${namespace}/${name}`;
    const hit = this.cache.get(key);
    if (!hit || hit.resourceVersion === rv) return;
    this.cache.delete(key);
    void hit.client.rest.close();
    this.log.info('kubeconfig Secret changed; dropping cached client', { secret: key });
    for (const l of this.listeners) {
      try {
        l({ namespace, name });
      } catch (err) {
        this.log.error('secret change listener threw', { err: errMessage(err) });
      }
    }
  }
}
