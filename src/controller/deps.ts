// What the WanMigration reconciler is wired with. The provider ports (link, storage pre-copy,
// relay, Events, clock) are defined in src/api/ports.ts so that their implementations never import
// the controller; what stays here names src/kube's clients, which only the controller and the
// operator that wires it may know about.
import type { KubeClient } from '../kube/client.ts';
import { liveReader, type ObjectReader } from '../kube/cached-reader.ts';
import type { Site } from '../api/site.ts';
import type { Clock, EventSink, LinkProvider, MigrationRelay, StoragePreCopy } from '../api/ports.ts';
import type { PlanOptions } from './phases/plan.ts';
import type { WanMigrationMetrics } from './metrics.ts';

/** Clients for peer clusters. Throws ClusterClientError (src/kube/clusters.ts) for bad credentials. */
export interface SiteClusters {
  forSite(site: Site, signal?: AbortSignal): Promise<KubeClient>;
}

/** Where observe() reads from: informer caches (live fallback), or the API before a destructive step. */
export interface MigrationReads {
  /**
   * The objects a migration's progress shows in (VMs, VMIs, VMIMs, DataVolumes, our copies) are
   * read from the API server, not a cache; configuration (Sites, KubeVirt CRs, CA bundles) may
   * still come from a cache.
   */
  readonly live: boolean;
  readonly local: ObjectReader;
  /**
   * Reads of a Site's cluster, once its API answered (starts that cluster's caches on first use:
   * in the Site's allowedNamespaces, or in `namespace`, this migration's target namespace if the
   * Site accepts it, when the Site lists none; never across all namespaces, which the peer need
   * not let us read).
   */
  target(site: Site, client: KubeClient, namespace: string | undefined): ObjectReader;
  /**
   * fn's result, reused for `ttlMs` when `ok(result)`: a check shared by all migrations (e.g. "the
   * target namespace exists") instead of a request per reconcile. Live reads always run fn.
   */
  remember<T>(key: string, ttlMs: number, ok: (v: T) => boolean, fn: () => Promise<T>): Promise<T>;
}

/** The informer caches behind the WanMigration reconciler (cache/migration-caches.ts). */
export interface MigrationCachesPort {
  /** Cached reads; `fresh`: progress read from the API (before a destructive step), configuration cached. */
  reads(opts?: { fresh?: boolean }): MigrationReads;
  /**
   * Runs fn once per `key` and `version` (e.g. a Site pair and the versions of its CA bundles),
   * however many migrations ask at the same time; concurrent callers share the one run.
   */
  once(key: string, version: string, fn: () => Promise<void>): Promise<void>;
}

/** Reads from the API server only (no caches, or a decision that must not rest on a stale cache). */
export function liveReads(local: KubeClient): MigrationReads {
  return {
    live: true,
    local: liveReader(local),
    target: (_site, client) => liveReader(client),
    remember: (_key, _ttl, _ok, fn) => fn(),
  };
}

export interface WanMigrationDeps {
  /** The cluster this operator runs in (source VMs, WanMigrations, Sites, Secrets). */
  local: KubeClient;
  clusters: SiteClusters;
  events: EventSink;
  link?: LinkProvider;
  storage?: StoragePreCopy;
  relay?: MigrationRelay;
  metrics?: WanMigrationMetrics;
  clock?: Clock;
  plan?: Partial<PlanOptions>;
  /** KubeVirt's namespace in the local cluster. Default `kubevirt`. */
  localKubevirtNamespace?: string;
  /** Bound on each remote reachability check. Default 5 s. */
  remoteTimeoutMs?: number;
  /** Informer caches for the reads; without them every read is live. */
  caches?: MigrationCachesPort;
}

export const systemClock: Clock = { now: () => new Date() };
