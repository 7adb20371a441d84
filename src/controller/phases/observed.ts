// What the WanMigration reconciler saw in both clusters, reduced to the facts the pure planner
// needs. Reading them is impure (src/controller/observe.ts, read-only: `Facts`); the provider
// calls the planner asks for (steps.ts) add their reports, which makes `Observed`; deciding on it
// is pure (plan.ts).
import type { StepReport } from '../../api/ports.ts';
import type { MigrationProgress } from '../../api/wanmigration.ts';
import type { Sizing } from './deadlines.ts';

/** Result of a precondition check that can block the start (bad input, unreachable cluster…). */
export type Check = { ok: true } | { ok: false; reason: string; message: string };

export interface VmimView {
  name: string;
  phase: string; // '' when KubeVirt has not set one yet
  /** Message of the decentralizedMigrationBlocked condition when it is True. */
  blocked?: string;
  failureReason?: string;
  synchronizationAddress?: string;
  /** Kubernetes uid, used as a delete precondition. */
  uid?: string;
  /** It carries a deletionTimestamp (KubeVirt's finalizer holds it while the cancel propagates). */
  deleting?: boolean;
  /** It has our deterministic name but not our migration label: someone else's object. */
  foreign?: boolean;
}

export interface SourceView {
  vmExists: boolean;
  runStrategy?: string;
  vmiPhase?: string; // undefined: no VMI
  /** LiveMigratable condition of the VMI, when present. */
  liveMigratable?: { status: string; reason?: string; message?: string };
  /** The source VM is already in the state spec.sourceAfterCutover asks for. */
  handled: boolean;
  /** ServiceAccounts the VM mounts (target-objects.ts volumeRefs): not copied, so they must not cross namespaces. */
  serviceAccounts?: string[];
}

export interface TargetView {
  /** A VM with the target name exists on the target. */
  vmExists: boolean;
  /** …and carries our migration label (we created it). */
  vmOwned: boolean;
  vmRunStrategy?: string;
  vmiPhase?: string;
  /** Every object we must create on the target (VM, DataVolumes, copied Secrets/ConfigMaps) exists. */
  objectsComplete: boolean;
  /** Disks (DataVolumes) the receiver needs that already exist on the target but are not ours. */
  foreignDisks?: string[];
  /** Secrets/ConfigMaps ("Secret x") on the target that are not ours and differ from the source's. */
  foreignAux?: string[];
  /** Number of objects on the target labelled as ours (for cleanup). */
  ownedObjects: number;
  /** Each cluster's kubevirt-ca bundle is in the other's kubevirt-external-ca. */
  caTrusted: boolean;
  /** A kubevirt-ca bundle is missing or is not PEM certificates: CA trust cannot be set up. */
  caProblem?: { reason: string; message: string };
  /** The target KubeVirt CR's status.synchronizationAddresses[0], if any. */
  kubevirtSyncAddress?: string;
  /**
   * Where the source's migration connections go, once the target's migration proxy listens:
   * the receiver VMI's status.migrationState.targetNodeAddress and the node ports of
   * targetDirectMigrationNodePorts (memory, disks, libvirt). The relay registers exactly these.
   */
  migrationEndpoint?: { address: string; ports: number[] };
}

export interface Observed {
  now: Date;
  deleting: boolean;
  hasFinalizer: boolean;
  /** Name of another active WanMigration for the same VM that takes precedence, if any. */
  conflictWith?: string;
  site: Check; // Site exists, kubeconfig Secret exists and parses
  /** The Site accepts the target namespace for a WanMigration of this namespace (api/tenancy.ts). */
  tenancy: Check;
  /** The Site is being deleted: nothing new starts on it (running migrations finish). */
  siteDeleting?: boolean;
  targetCluster: Check; // target API reachable
  kubevirt: Check; // KubeVirt with DecentralizedLiveMigration on both clusters
  targetNamespace: Check;
  source: SourceView;
  /** Undefined when the target cluster could not be read. */
  target?: TargetView;
  sourceVMIM?: VmimView;
  targetVMIM?: VmimView;
  link: StepReport;
  /** Undefined when storage.mode is KubeVirt (delegated). */
  storage?: StepReport;
  /** Byte-level progress of the memory migration from the relay (issue 5), when one runs. */
  relayProgress?: MigrationProgress;
  /** A relay provider is configured (spec.relay.enabled is honoured). */
  relayAvailable?: boolean;
  /** Annotation cloudnet.io/skip-target-cleanup=true: the target is gone for good; do not wait for it. */
  skipTargetCleanup?: boolean;
  /** Hash of the start-frozen spec fields as they are now. */
  specHash: string;
  /** Sizes and bandwidth for the derived deadlines (read only until the migration has started). */
  sizing?: Sizing;
  /** What the operator may not do in the source namespace (asked only until the migration has started). */
  sourceAccess?: Check;
  /** What the Site's credentials may not do in the target namespace (asked only until the migration has started). */
  targetAccess?: Check;
  /** KubeVirt encrypts the node-to-node migration connection (spec.configuration.migrations.disableTLS
   *  is not true on the source cluster): a relay on the path sees only ciphertext. */
  migrationTLS: boolean;
  /** The relay registration of the migration's flows (when relay.enabled and a relay runs). */
  relayRegistration?: StepReport;
}

/** What observe() reads: Observed without what only the provider steps (steps.ts) can tell. */
export interface Facts extends Omit<Observed, 'conflictWith' | 'link' | 'storage' | 'relayProgress' | 'relayAvailable' | 'relayRegistration'> {
  /** Which providers this operator runs (its configuration, not a cluster read). */
  providers: { link: boolean; storage: boolean; relay: boolean };
  /** The target Site object exists (its kubeconfig may still be unusable: see `site`). */
  siteExists: boolean;
  /** API server URL of the target cluster when it answered, for messages. */
  targetServer?: string;
}
