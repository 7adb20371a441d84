// What the WanMigration reconciler is wired with. The provider ports (link, storage pre-copy,
// relay, Events, clock) are defined in src/api/ports.ts so that their implementations never import
// the controller; what stays here names src/kube's clients, which only the controller and the
// operator that wires it may know about.
import type { KubeClient } from '../kube/client.ts';
import type { Site } from '../api/site.ts';
import type { Clock, EventSink, LinkProvider, MigrationRelay, StoragePreCopy } from '../api/ports.ts';
import type { PlanOptions } from './phases/plan.ts';
import type { WanMigrationMetrics } from './metrics.ts';

/** Clients for peer clusters. Throws ClusterClientError (src/kube/clusters.ts) for bad credentials. */
export interface SiteClusters {
  forSite(site: Site, signal?: AbortSignal): Promise<KubeClient>;
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
}

export const systemClock: Clock = { now: () => new Date() };
