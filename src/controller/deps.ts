// What the reconcilers need from the outside world, as small interfaces. The runtime (src/kube)
// supplies clients and Events; later issues supply the WAN link (issue 6) and the storage pre-copy
// (issue 7). Until a provider exists the reconcilers say so in their conditions instead of
// pretending.
import type { KubeClient } from '../kube/client.ts';
import type { KubeObject } from '../kube/rest.ts';
import type { Site } from '../api/site.ts';
import type { MigrationProgress, WanMigration } from '../api/wanmigration.ts';
import type { StepReport } from './phases/observed.ts';
import type { PlanOptions } from './phases/plan.ts';
import type { WanMigrationMetrics } from './metrics.ts';

export interface EventSink {
  event(regarding: KubeObject, type: 'Normal' | 'Warning', reason: string, note: string): void;
}

/** Clients for peer clusters. Throws ClusterClientError (src/kube/clusters.ts) for bad credentials. */
export interface SiteClusters {
  forSite(site: Site, signal?: AbortSignal): Promise<KubeClient>;
}

export interface Clock {
  now(): Date;
}

export interface LinkRequest {
  site: Site;
  migration?: WanMigration;
}

/** Sets up / checks the WAN link to a site (issue 6: WireGuard). Idempotent. */
export interface LinkProvider {
  ensure(req: LinkRequest, signal: AbortSignal): Promise<StepReport>;
  /** Measures the link for Site status. */
  probe?(site: Site, signal: AbortSignal): Promise<{ rttMs?: number; bandwidthBps?: number; lossRatio?: number }>;
}

export interface StorageRequest {
  migration: WanMigration;
  sourceVM: KubeObject;
  source: KubeClient;
  target: KubeClient;
}

/** Pre-copies disks to the target before the memory migration (issue 7). Idempotent. */
export interface StoragePreCopy {
  sync(req: StorageRequest, signal: AbortSignal): Promise<StepReport>;
  release(req: StorageRequest, signal: AbortSignal): Promise<void>;
}

export interface RelayRequest {
  migration: WanMigration;
  site: Site;
}

/** The WAN relay of issue 5, as far as the reconciler needs it: live byte counters. */
export interface MigrationRelay {
  progress(req: RelayRequest, signal: AbortSignal): Promise<MigrationProgress | undefined>;
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
