// The ports: what the reconcilers (src/controller) need from the outside world, as small
// interfaces and plain values. The implementations (src/link's gateway provider, src/storage's
// agent client, the operator's relay client, src/kube's Event recorder) depend on these, never on
// the controller; the operator wires one to the other. Until a provider exists the reconcilers say
// so in their conditions instead of pretending.
//
// Requests carry values, never clients: a port that handed out a cluster client would tie
// src/api to src/kube. A provider that needs a cluster receives its client when the operator
// constructs it (GatewayLinkProvider gets the local client that way), so these types need no
// import from the runtime.
import type { KubeObjectShape } from './resources.ts';
import type { Site } from './site.ts';
import type { MigrationProgress, WanMigration } from './wanmigration.ts';

/** A provider step (link, storage pre-copy) as reported by its provider. */
export interface StepReport {
  state: 'Ready' | 'Progressing' | 'Failed' | 'Unavailable';
  reason: string;
  message: string;
  progress?: MigrationProgress;
}

/** Kubernetes Events about the objects we reconcile (src/kube's EventRecorder implements it). */
export interface EventSink {
  event(regarding: KubeObjectShape, type: 'Normal' | 'Warning', reason: string, note: string): void;
}

export interface Clock {
  now(): Date;
}

export interface LinkRequest {
  site: Site;
  migration?: WanMigration;
}

/** What a link provider measured, for Site status. */
export interface LinkMeasurements {
  rttMs?: number;
  bandwidthBps?: number;
  lossRatio?: number;
}

/** Sets up / checks the WAN link to a site (issue 6: WireGuard). Idempotent. */
export interface LinkProvider {
  ensure(req: LinkRequest, signal: AbortSignal): Promise<StepReport>;
  /** Measures the link for Site status. */
  probe?(site: Site, signal: AbortSignal): Promise<LinkMeasurements>;
}

export interface StorageRequest {
  migration: WanMigration;
  /** The source VirtualMachine as read this reconcile (its disks are what gets copied). */
  sourceVM: KubeObjectShape;
}

/** How a migration ended, for StoragePreCopy.release. */
export interface StorageRelease {
  /** Rolled back: the target volumes the pre-copy made go too. Otherwise they are the VM's disks and stay. */
  rolledBack: boolean;
}

/** Pre-copies disks to the target before the memory migration (issue 7). Idempotent. */
export interface StoragePreCopy {
  sync(req: StorageRequest, signal: AbortSignal): Promise<StepReport>;
  /** Removes what the pre-copy launched (agents, credentials; volumes only after a rollback). */
  release(req: StorageRequest, how: StorageRelease, signal: AbortSignal): Promise<void>;
}

export interface RelayRequest {
  migration: WanMigration;
  site: Site;
}

/** A TCP destination of the migration (KubeVirt: the target node's migration proxy). */
export interface FlowDestination {
  host: string;
  port: number;
}

export interface RelayFlowRequest extends RelayRequest {
  /** The target node address and each migration port (target VMI status.migrationState). */
  destinations: FlowDestination[];
  /** KubeVirt's migration TLS is on: the stream is encrypted end to end, the relay can only carry it. */
  encrypted: boolean;
}

/**
 * The WAN relay of issue 5, as far as the reconciler needs it. The gateway intercepts the flows a
 * migration registers (exact destinations) and the relay reduces them with the migration's
 * settings; each relay session is attributed to the migration that registered its flow.
 */
export interface MigrationRelay {
  /** Registers (idempotently) the migration's flows and relay settings; Ready once intercepted. */
  register(req: RelayFlowRequest, signal: AbortSignal): Promise<StepReport>;
  /** Releases the migration's flows (no-op when none are registered). */
  release(req: RelayRequest, signal: AbortSignal): Promise<void>;
  /** Live byte counters of the sessions of the migration's registered flows. */
  progress(req: RelayRequest, signal: AbortSignal): Promise<MigrationProgress | undefined>;
}
