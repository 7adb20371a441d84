// The KubeVirt stand-in: a small polling controller that acts out KubeVirt's behaviour for
// VirtualMachine, VirtualMachineInstance and VirtualMachineInstanceMigration on a real API
// server, including decentralized (cross-cluster) live migration. What it does, and where in
// kubevirt/kubevirt each behaviour comes from, is in README.md next to this file. In short:
//  - KubeVirt CR `kubevirt/kubevirt` (feature gate DecentralizedLiveMigration, status
//    synchronizationAddresses); ConfigMap `kubevirt-ca` holding a real self-signed CA
//    certificate, and `kubevirt-external-ca`, which it drains into `kubevirt-ca` like virt-operator;
//  - a VM with runStrategy Always gets a VMI that goes Scheduling → Running; Halted removes it;
//  - a VM with runStrategy WaitAsReceiver gets a receiver VMI (annotation
//    kubevirt.io/create-migration-target, phase WaitingForSync), printableStatus WaitingForReceiver;
//  - VMIM phases as virt-controller sets them: receiver "" → WaitingForSync → Pending → Scheduling
//    → Scheduled → PreparingTarget → TargetReady → Running → Succeeded; sender "" → Synchronizing →
//    Pending → … the same. The pair meets through the SyncHub (the in-process stand-in for the
//    synchronization controllers' gRPC channel) when the sender's connectURL is the receiver's
//    address. While WaitingForSync the receiver VMIM carries decentralizedMigrationBlocked
//    ("waiting for incoming synchronization, unable to proceed"), as KubeVirt's main branch does;
//  - on success the receiver VMI runs and the target VM switches to the run strategy named by
//    kubevirt.io/restore-run-strategy (the annotation stays); the source VMI ends Succeeded and a
//    source VM with runStrategy Always is set to Halted by "KubeVirt" itself;
//  - decentralized VMIMs carry the finalizer synchronization.kubevirt.io/migrationFinalizer;
//    deleting either one cancels: the other fails, the source keeps running; a failed migration
//    puts the receiver VMI back to WaitingForSync with migrationState.failed (no retry).
// Failures and hangs on demand come from annotations on the source VM (ANNOTATIONS below).
import { X509Certificate } from 'node:crypto';
import type {
  V1VirtualMachine, V1VirtualMachineInstance, V1VirtualMachineInstanceMigration,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient } from '../../src/kube/client.ts';
import { isAlreadyExists, isNotFound, type KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { FakeDriver, type Injection, type MigrationEndpoint, type VmiDriver, type VmiRef } from './driver.ts';
import { issueCert, newCA, type KeyPair } from './ca.ts';
import type { NodeTls } from './migration-proxy.ts';

export const ANNOTATIONS = {
  /** "false": the VMI reports LiveMigratable=False. */
  liveMigratable: 'standin.cloudnet.io/live-migratable',
  /**
   * VMIM phase at which the migration stops progressing (a KubeVirt hang). `Synchronizing` or
   * `WaitingForSync`: the pair never meets (sender stays Synchronizing, receiver WaitingForSync).
   */
  hangAt: 'standin.cloudnet.io/hang-at',
  /** VMIM phase at which the migration fails (`Synchronizing`/`WaitingForSync`: when the pair meets). */
  failAt: 'standin.cloudnet.io/fail-at',
  /** Message of a True decentralizedMigrationBlocked condition on the sender (it cannot sync). */
  blocked: 'standin.cloudnet.io/blocked',
} as const;

/** kubevirt.io/v1 constants (staging/src/kubevirt.io/api/core/v1/types.go). */
export const KV = {
  restoreRunStrategy: 'kubevirt.io/restore-run-strategy',
  createMigrationTarget: 'kubevirt.io/create-migration-target',
  /** pkg/synchronization-controller/synchronization-controller.go */
  syncFinalizer: 'synchronization.kubevirt.io/migrationFinalizer',
  waitingForSyncMessage: 'waiting for incoming synchronization, unable to proceed',
} as const;

/** Phases both VMIMs go through after the sync controllers met (virt-controller migration.go). */
export const AFTER_SYNC = ['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'] as const;
const PAIRING_PHASES = new Set(['Synchronizing', 'WaitingForSync']);

type VM = V1VirtualMachine & KubeObject;
type VMI = V1VirtualMachineInstance & KubeObject;
type VMIM = V1VirtualMachineInstanceMigration & KubeObject;
type DataObj = KubeObject & { data?: Record<string, string> };

interface MigrationRecord {
  migrationID: string;
  /** -1 until the pair met, then the index in AFTER_SYNC the sender reached. */
  step: number;
  outcome?: 'Succeeded' | 'Failed';
  since: number;
  failureReason?: string;
  /** The receiver's driver listens (QEMU -incoming): the sender may pass PreparingTarget. */
  receiverReady: boolean;
  /** The target's migration proxy (published on the receiver VMI), and when its domain was ready. */
  endpoint?: MigrationEndpoint;
  /** The target node's TLS material when the target side's migration TLS is on. */
  targetTls?: NodeTls;
  domainReadyAt?: string;
  receiver?: { cluster: string; namespace: string; vmim: string; vmi: string; address: string };
  sender?: { cluster: string; namespace: string; vmim: string; vmi: string; connectURL: string; inject: Injection };
  job?: AbortController;
}

/** Shared by the stand-ins of all clusters: pairs sender and receiver by migrationID. */
export class SyncHub {
  readonly records = new Map<string, MigrationRecord>();
  /** uid of every VMIM any stand-in ever saw (tests assert "one pair only"). */
  readonly vmimUIDs = new Set<string>();
  /** The same, per migrationID. */
  readonly vmimsByMigration = new Map<string, Set<string>>();

  record(id: string): MigrationRecord {
    let r = this.records.get(id);
    if (!r) this.records.set(id, (r = { migrationID: id, step: -1, since: Date.now(), receiverReady: false }));
    return r;
  }

  fail(r: MigrationRecord, reason: string): void {
    if (r.outcome) return;
    r.outcome = 'Failed';
    r.failureReason = reason;
    r.since = Date.now();
    r.job?.abort(new Error(reason));
  }
}

export interface StandInOptions {
  client: KubeClient;
  hub: SyncHub;
  /** Address this cluster's "synchronization controller" advertises, e.g. 192.0.2.11:9185. */
  syncAddress: string;
  kubevirtNamespace?: string;
  /** Minimum time between two phase changes of one object. Default 30 ms. */
  phaseDelayMs?: number;
  tickMs?: number;
  driver?: VmiDriver;
  /** Feature gates in the published KubeVirt CR. Default [DecentralizedLiveMigration]. */
  featureGates?: string[];
  /** status.observedKubeVirtVersion of the published KubeVirt CR. Default v1.7.0. */
  version?: string;
  /** spec.configuration.migrations of the published KubeVirt CR (e.g. { disableTLS: true }). */
  migrations?: { disableTLS?: boolean };
  /** Name of the node the VMs of this cluster run on (VMI status.nodeName). */
  nodeName?: string;
  /** That node's migration address (its certificate is issued for it). Default 127.0.0.1. */
  nodeAddress?: string;
  /**
   * How this cluster's synchronization controller reaches a peer's (`connectURL`): resolves when
   * a TCP connection to it opens from where the controller runs, rejects with the dial error.
   * Default: not dialled (the pair meets through the SyncHub alone).
   */
  syncDial?(address: string, signal: AbortSignal): Promise<void>;
}

const terminal = (p: string | undefined) => p === 'Succeeded' || p === 'Failed';
const key = (o: KubeObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;

function runStrategy(vm: VM): string {
  return vm.spec.runStrategy ?? (vm.spec.running ? 'Always' : 'Halted');
}

function injection(vm: VM | undefined): Injection {
  const a = vm?.metadata?.annotations ?? {};
  return {
    ...(a[ANNOTATIONS.hangAt] ? { hangAt: a[ANNOTATIONS.hangAt] } : {}),
    ...(a[ANNOTATIONS.failAt] ? { failAt: a[ANNOTATIONS.failAt] } : {}),
    ...(a[ANNOTATIONS.blocked] ? { blocked: a[ANNOTATIONS.blocked] } : {}),
  };
}

/** The VMI condition the synchronization controller sets, which virt-controller mirrors on the VMIM. */
function blockedConditions(message: string | undefined): { vmi: unknown[]; vmim: unknown[] } {
  if (message === undefined) return { vmi: [], vmim: [] };
  // No timestamps: an unchanged condition must compare equal, or every tick would write it again.
  const c = { status: 'True', reason: 'DecentralizedNotMigratable', message };
  return { vmi: [{ type: 'DecentralizedLiveMigrationFailure', ...c }], vmim: [{ type: 'decentralizedMigrationBlocked', ...c }] };
}

export class KubeVirtStandIn {
  readonly client: KubeClient;
  readonly hub: SyncHub;
  readonly syncAddress: string;
  private readonly ns: string;
  private readonly delay: number;
  private readonly tickMs: number;
  private readonly driver: VmiDriver;
  private readonly featureGates: string[];
  private readonly version: string;
  private readonly migrations: { disableTLS?: boolean } | undefined;
  readonly nodeName: string;
  readonly nodeAddress: string;
  private readonly syncDial: StandInOptions['syncDial'];
  private ca: KeyPair | undefined;
  private nodeCert: KeyPair | undefined;
  private readonly abort = new AbortController();
  private readonly lastChange = new Map<string, number>();
  private readonly starting = new Set<string>();
  private readonly preparing = new Set<string>();
  private seenVmims = new Map<string, string>(); // uid → migrationID
  private lastCASync = 0;
  /** Status/object writes this stand-in made (tests check it does not write in a loop). */
  writes = 0;
  /** The same, per namespace, for tests that run next to others in the same clusters. */
  readonly writesByNamespace = new Map<string, number>();

  private countWrite(namespace: string | undefined): void {
    this.writes++;
    const ns = namespace ?? '';
    this.writesByNamespace.set(ns, (this.writesByNamespace.get(ns) ?? 0) + 1);
  }
  private loop: Promise<void> | undefined;
  errors = 0;
  /** Test knob: receiver VMIs are not created (KubeVirt slow to schedule the receiver). */
  holdReceivers = false;
  /** Test knob: after the memory transfer the receiver does not switch over yet. */
  holdCompletion = false;

  constructor(o: StandInOptions) {
    this.client = o.client;
    this.hub = o.hub;
    this.syncAddress = o.syncAddress;
    this.ns = o.kubevirtNamespace ?? 'kubevirt';
    this.delay = o.phaseDelayMs ?? 30;
    this.tickMs = o.tickMs ?? 40;
    this.driver = o.driver ?? new FakeDriver({ delayMs: this.delay, ...(o.nodeAddress ? { nodeAddress: o.nodeAddress } : {}) });
    this.featureGates = o.featureGates ?? ['DecentralizedLiveMigration'];
    this.version = o.version ?? 'v1.7.0';
    this.migrations = o.migrations;
    this.nodeName = o.nodeName ?? `${o.client.clusterName}-node`;
    this.nodeAddress = o.nodeAddress ?? '127.0.0.1';
    this.syncDial = o.syncDial;
  }

  get cluster(): string {
    return this.client.clusterName;
  }

  /** Publishes the KubeVirt CR, kubevirt-ca and kubevirt-external-ca, then starts the control loop. */
  async start(): Promise<void> {
    await this.install();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const r of this.hub.records.values()) r.job?.abort(new Error('stand-in stopped'));
    await this.loop;
  }

  private async install(): Promise<void> {
    const c = this.client;
    await this.createIfMissing(Res.namespace, { metadata: { name: this.ns } });
    // virt-operator keeps the CA in the Secret kubevirt-ca and publishes its certificate in the
    // ConfigMap kubevirt-ca; a stand-in restarted on the same cluster takes the CA it finds.
    const fresh = newCA(`kubevirt.io@${this.cluster}`);
    await this.createIfMissing(Res.secret, { metadata: { name: 'kubevirt-ca', namespace: this.ns }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': fresh.cert, 'tls.key': fresh.key } } as KubeObject);
    const sec = await c.get<KubeObject & { data?: Record<string, string> }>(Res.secret, this.ns, 'kubevirt-ca');
    const b64 = (k: string) => Buffer.from(sec.data?.[k] ?? '', 'base64').toString('utf8');
    this.ca = { cert: b64('tls.crt'), key: b64('tls.key') };
    await this.createIfMissing(Res.configMap, { metadata: { name: 'kubevirt-ca', namespace: this.ns }, data: { 'ca-bundle': this.ca.cert } });
    await this.createIfMissing(Res.configMap, { metadata: { name: 'kubevirt-external-ca', namespace: this.ns }, data: { 'ca-bundle': '' } });
    await this.createIfMissing(Res.kubevirt, {
      metadata: { name: 'kubevirt', namespace: this.ns },
      spec: { configuration: { developerConfiguration: { featureGates: this.featureGates }, ...(this.migrations ? { migrations: this.migrations } : {}) } },
    });
    await c.patchStatus(Res.kubevirt, this.ns, 'kubevirt', {
      phase: 'Deployed', observedKubeVirtVersion: `${this.version}-standin`, synchronizationAddresses: [this.syncAddress],
    });
  }

  private async createIfMissing(ref: typeof Res[keyof typeof Res], obj: KubeObject): Promise<void> {
    try {
      await this.client.create(ref, obj);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        await this.tick(signal);
      } catch (e) {
        if (signal.aborted) break;
        // Conflicts and races with the operator are normal: the next tick sees fresh state.
        this.errors++;
        if (process.env.STANDIN_DEBUG) console.error(`[standin ${this.cluster}]`, e);
      }
      await new Promise((r) => setTimeout(r, this.tickMs));
    }
  }

  /** True when `id` changed phase at least phaseDelayMs ago. */
  private ready(id: string): boolean {
    const last = this.lastChange.get(id) ?? 0;
    return Date.now() - last >= this.delay;
  }

  private stamp(id: string): void {
    this.lastChange.set(id, Date.now());
  }

  private async tick(signal: AbortSignal): Promise<void> {
    const c = this.client;
    const [vms, vmis, vmims] = await Promise.all([
      c.list<VM>(Res.vm, undefined, {}, signal), c.list<VMI>(Res.vmi, undefined, {}, signal), c.list<VMIM>(Res.vmim, undefined, {}, signal),
    ]);
    const vmBy = new Map(vms.items.map((v) => [key(v), v]));
    const vmiBy = new Map(vmis.items.map((v) => [key(v), v]));
    await this.cancelVanishedVmims(vmims.items);
    for (const m of vmims.items) await this.syncVmim(m, vmBy, vmiBy);
    for (const vm of vms.items) await this.syncVM(vm, vmiBy.get(key(vm)), signal);
    for (const vmi of vmis.items) {
      const owner = vmi.metadata?.ownerReferences?.find((r) => r.kind === 'VirtualMachine');
      if (owner && !vmBy.has(key(vmi)) && !vmi.metadata?.deletionTimestamp) {
        await this.driver.stop(this.ref(vmi));
        await c.delete(Res.vmi, vmi.metadata?.namespace, vmi.metadata?.name ?? '');
      }
    }
    if (Date.now() - this.lastCASync >= 250) {
      this.lastCASync = Date.now();
      await this.importExternalCAs(signal);
    }
  }

  private ref(o: KubeObject): VmiRef {
    return { cluster: this.cluster, namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '' };
  }

  // ---- virt-operator: kubevirt-external-ca is an inbox drained into kubevirt-ca ----

  /**
   * As virt-operator's createOrUpdateComponentsWithCertificates (pkg/virt-operator/resource/apply/
   * core.go): parse the inbox (all or nothing), append each certificate valid now that the bundle
   * lacks, then empty the inbox, garbage included.
   */
  private async importExternalCAs(signal: AbortSignal): Promise<void> {
    const ext = await this.client.tryGet<DataObj>(Res.configMap, this.ns, 'kubevirt-external-ca', signal);
    const inbox = ext?.data?.['ca-bundle'] ?? '';
    if (!ext || !inbox) return;
    const ca = await this.client.get<DataObj>(Res.configMap, this.ns, 'kubevirt-ca', signal);
    let bundle = ca.data?.['ca-bundle'] ?? '';
    const have = new Set(parsePEM(bundle).map((x) => x.fingerprint256));
    const now = Date.now();
    for (const x of parsePEM(inbox)) {
      if (have.has(x.fingerprint256) || Date.parse(x.validFrom) > now || Date.parse(x.validTo) < now) continue;
      have.add(x.fingerprint256);
      bundle = `${bundle.trimEnd()}\n${x.toString().trim()}\n`;
    }
    if (bundle !== ca.data?.['ca-bundle']) {
      await this.client.patchMerge(Res.configMap, this.ns, 'kubevirt-ca', { metadata: { resourceVersion: ca.metadata?.resourceVersion }, data: { 'ca-bundle': bundle } }, signal);
    }
    await this.client.patchMerge(Res.configMap, this.ns, 'kubevirt-external-ca', { metadata: { resourceVersion: ext.metadata?.resourceVersion }, data: { 'ca-bundle': '' } }, signal);
  }

  // ---- VirtualMachine / VirtualMachineInstance ----

  private async syncVM(vm: VM, vmi: VMI | undefined, signal: AbortSignal): Promise<void> {
    const c = this.client;
    const rs = runStrategy(vm);
    const ns = vm.metadata?.namespace ?? '';
    const name = vm.metadata?.name ?? '';
    if (vm.metadata?.deletionTimestamp) return;
    const migratedAway = vmi?.status?.phase === 'Succeeded' && vmi.status.migrationState?.completed === true && !vmi.metadata?.annotations?.[KV.createMigrationTarget];
    if (rs === 'Halted') {
      if (vmi && !vmi.metadata?.deletionTimestamp) {
        await this.driver.stop(this.ref(vmi));
        await c.delete(Res.vmi, ns, name);
      }
    } else if (migratedAway && rs === 'Always') {
      // vm.go syncRunStrategy: "decentralized migration completed, setting runStrategy to halted".
      await c.patchMerge(Res.vm, ns, name, { spec: { runStrategy: 'Halted', running: null } });
      return;
    } else if (migratedAway && rs === 'RerunOnFailure') {
      if (vmi && !vmi.metadata?.deletionTimestamp) await c.delete(Res.vmi, ns, name);
    } else if (!vmi) {
      const receiver = rs === 'WaitAsReceiver';
      if (receiver && this.holdReceivers) return;
      await c.create(Res.vmi, {
        apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance',
        metadata: {
          name, namespace: ns, labels: vm.spec.template.metadata?.labels ?? {},
          ...(receiver ? { annotations: { [KV.createMigrationTarget]: 'true' } } : {}),
          ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name, uid: vm.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true }],
        },
        spec: vm.spec.template.spec ?? { domain: { devices: {} } },
      });
      await c.patchStatus(Res.vmi, ns, name, receiver
        ? { phase: 'WaitingForSync', conditions: [] }
        : { phase: 'Scheduling', conditions: [] });
      this.stamp(`vmi:${ns}/${name}`);
      vmi = undefined;
    } else if (vmi.status?.phase === 'Scheduling' && !vmi.metadata?.annotations?.[KV.createMigrationTarget] && !this.starting.has(key(vmi))) {
      const k = key(vmi);
      this.starting.add(k);
      const live = vm.metadata?.annotations?.[ANNOTATIONS.liveMigratable] !== 'false';
      void this.driver.start({ ...this.ref(vmi), spec: vmi.spec }, signal).then(
        () => c.patchStatus(Res.vmi, ns, name, {
          phase: 'Running', nodeName: this.nodeName,
          conditions: [
            { type: 'Ready', status: 'True' },
            live ? { type: 'LiveMigratable', status: 'True' } : { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: 'stand-in: marked not live-migratable by annotation' },
            { type: 'StorageLiveMigratable', status: 'True' },
          ],
        }),
      ).catch(() => { this.errors++; }).finally(() => this.starting.delete(k));
    }
    const phase = vmi?.status?.phase;
    const printable = rs === 'WaitAsReceiver' ? (!phase || phase === 'WaitingForSync' ? 'WaitingForReceiver' : 'Migrating')
      : rs === 'Halted' ? 'Stopped' : phase === 'Running' ? 'Running' : phase === 'Succeeded' ? 'Succeeded' : phase === 'Failed' ? 'Failed' : 'Starting';
    if (vm.status?.printableStatus !== printable) {
      await c.patchStatus(Res.vm, ns, name, { printableStatus: printable, ready: printable === 'Running', created: !!vmi });
    }
  }

  // ---- VirtualMachineInstanceMigration ----

  private async cancelVanishedVmims(current: VMIM[]): Promise<void> {
    const now = new Map<string, string>();
    for (const m of current) {
      const id = m.spec.receive?.migrationID ?? m.spec.sendTo?.migrationID;
      if (id && m.metadata?.uid) now.set(m.metadata.uid, id);
    }
    for (const [uid, id] of this.seenVmims) {
      if (!now.has(uid)) {
        const r = this.hub.records.get(id);
        if (r) this.hub.fail(r, 'migration canceled: a VMIM of this migration was deleted');
      }
    }
    this.seenVmims = now;
    for (const [uid, id] of now) {
      this.hub.vmimUIDs.add(uid);
      let set = this.hub.vmimsByMigration.get(id);
      if (!set) this.hub.vmimsByMigration.set(id, (set = new Set()));
      set.add(uid);
    }
  }

  private async setVmimStatus(m: VMIM, phase: string, extra: Record<string, unknown> = {}): Promise<void> {
    const id = `vmim:${m.metadata?.uid}`;
    const cur = m.status?.phase ?? '';
    const body: Record<string, unknown> = { ...extra };
    if (cur !== phase) {
      this.stamp(id);
      body.phase = phase;
      body.phaseTransitionTimestamps = [...(m.status?.phaseTransitionTimestamps ?? []), { phase, phaseTransitionTimestamp: new Date().toISOString() }];
    }
    if (Object.keys(body).length === 0) return;
    if (cur === phase && sameFields(extra, (m.status ?? {}) as Record<string, unknown>)) return;
    this.countWrite(m.metadata?.namespace);
    await this.client.patchStatus(Res.vmim, m.metadata?.namespace, m.metadata?.name ?? '', body);
  }

  private async patchVmi(vmi: VMI, status: Record<string, unknown>): Promise<void> {
    if (sameFields(status, (vmi.status ?? {}) as Record<string, unknown>)) return;
    this.countWrite(vmi.metadata?.namespace);
    await this.client.patchStatus(Res.vmi, vmi.metadata?.namespace, vmi.metadata?.name ?? '', status);
  }

  private async syncVmim(m: VMIM, vmBy: Map<string, VM>, vmiBy: Map<string, VMI>): Promise<void> {
    const id = m.spec.receive?.migrationID ?? m.spec.sendTo?.migrationID;
    if (!id) return;
    const fin = m.metadata?.finalizers ?? [];
    if (m.metadata?.deletionTimestamp) {
      // The synchronization controller tells the other side (CancelMigration), then lets go.
      const r = this.hub.records.get(id);
      if (r && !terminal(m.status?.phase)) this.hub.fail(r, `migration canceled: VMIM ${m.metadata.namespace}/${m.metadata.name} on ${this.cluster} was deleted`);
      if (fin.includes(KV.syncFinalizer)) await this.removeSyncFinalizer(m);
      return;
    }
    if (!terminal(m.status?.phase) && !fin.includes(KV.syncFinalizer)) {
      await this.client.ensureFinalizer(Res.vmim, m, KV.syncFinalizer);
      return; // resourceVersion changed: act on the fresh object next tick
    }
    if (terminal(m.status?.phase) && fin.includes(KV.syncFinalizer)) await this.removeSyncFinalizer(m);
    const ns = m.metadata?.namespace ?? '';
    const vmiName = m.spec.vmiName ?? '';
    const vmi = vmiBy.get(`${ns}/${vmiName}`);
    if (m.spec.receive) await this.syncReceiver(m, vmi, vmBy.get(`${ns}/${vmiName}`));
    else if (m.spec.sendTo) await this.syncSender(m, vmi, vmBy.get(`${ns}/${vmiName}`));
  }

  /** This node's migration TLS material: its certificate (signed by the cluster's CA) and the
   *  kubevirt-ca bundle as it is now (the peer cluster's CA is there only if someone imported it). */
  async nodeTls(signal?: AbortSignal): Promise<NodeTls> {
    if (!this.ca) throw new Error('stand-in not installed');
    this.nodeCert ??= issueCert(this.ca, `virt-handler@${this.nodeName}`, [this.nodeAddress]);
    const bundle = await this.client.get<DataObj>(Res.configMap, this.ns, 'kubevirt-ca', signal);
    return { ...this.nodeCert, trust: bundle.data?.['ca-bundle'] ?? '' };
  }

  /** virt-handler's migration TLS: on unless the KubeVirt CR sets migrations.disableTLS (read each time, as virt-config does). */
  async migrationTLS(signal?: AbortSignal): Promise<boolean> {
    const kv = await this.client.get<KubeObject & { spec?: { configuration?: { migrations?: { disableTLS?: boolean } } } }>(Res.kubevirt, this.ns, 'kubevirt', signal);
    return kv.spec?.configuration?.migrations?.disableTLS !== true;
  }

  private async removeSyncFinalizer(m: VMIM): Promise<void> {
    try {
      await this.client.removeFinalizer(Res.vmim, m, KV.syncFinalizer);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  private async syncReceiver(m: VMIM, vmi: VMI | undefined, vm: VM | undefined): Promise<void> {
    const id = m.spec.receive!.migrationID;
    const cur = m.status?.phase ?? '';
    if (terminal(cur)) return;
    const r = this.hub.record(id);
    r.receiver = { cluster: this.cluster, namespace: m.metadata?.namespace ?? '', vmim: m.metadata?.name ?? '', vmi: m.spec.vmiName ?? '', address: this.syncAddress };
    const addresses = { synchronizationAddresses: [this.syncAddress] };
    if (!this.ready(`vmim:${m.metadata?.uid}`)) return;
    if (r.outcome === 'Failed') {
      await this.setVmimStatus(m, 'Failed', { ...addresses, conditions: [], migrationState: { failed: true, completed: true, failureReason: r.failureReason, endTimestamp: new Date().toISOString() } });
      // lifecycle.go: a migration target whose migration failed goes back to WaitingForSync.
      if (vmi) await this.patchVmi(vmi, { phase: 'WaitingForSync', conditions: [], migrationState: { failed: true, completed: true, migrationUid: id, failureReason: r.failureReason } });
      return;
    }
    if (r.step < 0) {
      // Until the sender's sync controller connects: WaitingForSync, flagged as blocked.
      const b = blockedConditions(KV.waitingForSyncMessage);
      if (vmi) await this.patchVmi(vmi, { conditions: b.vmi });
      await this.setVmimStatus(m, 'WaitingForSync', { ...addresses, conditions: vmi ? b.vmim : [] });
      return;
    }
    if (vmi && !r.receiverReady && r.step >= AFTER_SYNC.indexOf('Scheduling')) this.prepareReceiver(r, vmi, id);
    // virt-handler publishes its migration proxy on the receiver VMI, then when the domain is ready.
    if (vmi && r.endpoint && !r.outcome) {
      await this.patchVmi(vmi, { migrationState: {
        ...vmi.status?.migrationState, migrationUid: id, targetNode: this.nodeName, targetNodeAddress: r.endpoint.address,
        targetDirectMigrationNodePorts: r.endpoint.ports, ...(r.domainReadyAt ? { targetNodeDomainDetected: true, targetNodeDomainReadyTimestamp: r.domainReadyAt } : {}),
      } });
    }
    if (r.outcome === 'Succeeded') {
      if (this.holdCompletion || !vmi) return;
      await this.patchVmi(vmi, {
        phase: 'Running', nodeName: this.nodeName,
        conditions: [{ type: 'Ready', status: 'True' }, { type: 'LiveMigratable', status: 'True' }, { type: 'StorageLiveMigratable', status: 'True' }],
        migrationState: { completed: true, migrationUid: id, endTimestamp: new Date().toISOString(), targetNode: this.nodeName },
      });
      // vm.go, RunStrategyWaitAsReceiver: the run strategy comes back from the annotation, which stays.
      const restore = vm?.metadata?.annotations?.[KV.restoreRunStrategy];
      if (vm && runStrategy(vm) === 'WaitAsReceiver' && restore) {
        await this.client.patchMerge(Res.vm, vm.metadata?.namespace, vm.metadata?.name ?? '', { spec: { runStrategy: restore } });
      }
      await this.setVmimStatus(m, 'Succeeded', { ...addresses, conditions: [], migrationState: { completed: true, endTimestamp: new Date().toISOString() } });
      return;
    }
    const phase = AFTER_SYNC[Math.min(r.step, AFTER_SYNC.length - 1)];
    if (vmi) {
      const vmiPhase = r.step >= AFTER_SYNC.indexOf('Scheduled') ? 'Scheduled' : r.step >= AFTER_SYNC.indexOf('Scheduling') ? 'Scheduling' : 'WaitingForSync';
      await this.patchVmi(vmi, { phase: vmiPhase, conditions: [] });
    }
    await this.setVmimStatus(m, phase, { ...addresses, conditions: [] });
  }

  /**
   * Once the receiver's pod would exist: virt-handler on its node starts the migration proxy (its
   * address and ports are published on the receiver VMI next tick), then the domain (QEMU
   * -incoming in a real driver); when that listens, the domain is ready.
   */
  private prepareReceiver(r: MigrationRecord, vmi: VMI, id: string): void {
    const vk = vmi.metadata?.uid ?? key(vmi);
    if (this.preparing.has(vk)) return;
    this.preparing.add(vk);
    const inst = { ...this.ref(vmi), spec: vmi.spec };
    void (async () => {
      if (!r.endpoint) {
        if (await this.migrationTLS(this.abort.signal)) r.targetTls = await this.nodeTls(this.abort.signal);
        r.endpoint = await this.driver.listenForMigration(inst, id);
      }
      await this.driver.prepareReceiver(inst, id, this.abort.signal);
      r.domainReadyAt = new Date().toISOString();
      r.receiverReady = true;
    })().catch((e: unknown) => { this.errors++; this.hub.fail(r, `receiver could not be prepared: ${e instanceof Error ? e.message : String(e)}`); })
      .finally(() => this.preparing.delete(vk));
  }

  private async syncSender(m: VMIM, vmi: VMI | undefined, vm: VM | undefined): Promise<void> {
    const send = m.spec.sendTo!;
    const id = send.migrationID;
    const cur = m.status?.phase ?? '';
    if (terminal(cur)) return;
    const r = this.hub.record(id);
    const inject = injection(vm);
    r.sender = { cluster: this.cluster, namespace: m.metadata?.namespace ?? '', vmim: m.metadata?.name ?? '', vmi: m.spec.vmiName ?? '', connectURL: send.connectURL, inject };
    if (!this.ready(`vmim:${m.metadata?.uid}`)) return;
    const addresses = { synchronizationAddresses: [this.syncAddress] };
    if (!r.outcome && (!vmi || vmi.status?.phase !== 'Running')) this.hub.fail(r, `source VMI ${m.spec.vmiName} is not running`);
    if (r.outcome === 'Failed') {
      await this.setVmimStatus(m, 'Failed', { ...addresses, conditions: [], migrationState: { failed: true, completed: true, failureReason: r.failureReason, endTimestamp: new Date().toISOString() } });
      return;
    }
    if (r.outcome === 'Succeeded') {
      if (vmi) {
        await this.patchVmi(vmi, {
          phase: 'Succeeded',
          migrationState: { completed: true, migrationUid: id, endTimestamp: new Date().toISOString(), sourceNode: this.nodeName },
        });
        await this.driver.stop(this.ref(vmi));
      }
      await this.setVmimStatus(m, 'Succeeded', { ...addresses, migrationState: { completed: true, endTimestamp: new Date().toISOString() } });
      return;
    }
    if (cur === '') { await this.setVmimStatus(m, 'Synchronizing', addresses); return; }
    if (cur === 'Synchronizing') { await this.pair(m, r, send.connectURL, inject, addresses); return; }
    const idx = AFTER_SYNC.indexOf(cur as typeof AFTER_SYNC[number]);
    if (idx < 0 || cur === 'Running') return; // Running: the transfer job decides
    if (inject.hangAt === cur) return;
    const next = AFTER_SYNC[idx + 1];
    if (inject.failAt === next) { this.hub.fail(r, `stand-in: injected failure at ${next}`); return; }
    // TargetReady means the target listens: wait for the receiver's driver.
    if (next === 'TargetReady' && !r.receiverReady) return;
    // The synchronization controller hands the target's migrationState to the source VMI: the
    // source virt-handler dials what it finds there.
    if (next === 'TargetReady' && vmi && r.endpoint) {
      await this.patchVmi(vmi, { migrationState: {
        ...vmi.status?.migrationState, migrationUid: id, sourceNode: this.nodeName, targetNodeAddress: r.endpoint.address,
        targetDirectMigrationNodePorts: r.endpoint.ports, targetNodeDomainDetected: true, ...(r.domainReadyAt ? { targetNodeDomainReadyTimestamp: r.domainReadyAt } : {}),
      } });
    }
    r.step = idx + 1;
    if (next === 'Running') this.startTransfer(m, r, send.connectURL, inject);
    await this.setVmimStatus(m, next, { ...addresses, ...(next === 'Running' ? { migrationState: { startTimestamp: new Date().toISOString(), sourceNode: this.nodeName, migrationUid: id } } : {}) });
  }

  /** Synchronizing: the sender's sync controller dials connectURL and meets the receiver. */
  private async pair(m: VMIM, r: MigrationRecord, connectURL: string, inject: Injection, addresses: Record<string, unknown>): Promise<void> {
    const vmi = (await this.client.tryGet<VMI>(Res.vmi, m.metadata?.namespace, m.spec.vmiName ?? ''));
    const setBlocked = async (message: string | undefined) => {
      const b = blockedConditions(message);
      if (vmi) await this.patchVmi(vmi, { conditions: [...(vmi.status?.conditions ?? []).filter((c) => c.type !== 'DecentralizedLiveMigrationFailure'), ...b.vmi] });
      await this.setVmimStatus(m, 'Synchronizing', { ...addresses, conditions: b.vmim });
    };
    if (inject.blocked) { await setBlocked(inject.blocked); return; }
    if (r.receiver && r.receiver.address !== connectURL) {
      await setBlocked(`rpc error: code = Unavailable desc = connection error: dial tcp ${connectURL}: no synchronization controller for migration ${r.migrationID} answers there`);
      return;
    }
    if (!r.receiver) { await setBlocked(undefined); return; } // the target buffers until its VMIM exists
    if (this.syncDial) {
      // The sync controllers talk over the network: an unreachable peer blocks the pair here.
      const err = await this.syncDial(connectURL, AbortSignal.timeout(5000)).then(() => undefined, (e: unknown) => (e instanceof Error ? e.message : String(e)));
      if (err !== undefined) { await setBlocked(`rpc error: code = Unavailable desc = connection error: dial tcp ${connectURL}: ${err}`); return; }
    }
    if (inject.hangAt && PAIRING_PHASES.has(inject.hangAt)) { await setBlocked(undefined); return; }
    if (inject.failAt && PAIRING_PHASES.has(inject.failAt)) { this.hub.fail(r, `stand-in: injected failure at ${inject.failAt}`); return; }
    r.step = 0;
    r.since = Date.now();
    if (vmi) await this.patchVmi(vmi, { conditions: (vmi.status?.conditions ?? []).filter((c) => c.type !== 'DecentralizedLiveMigrationFailure') });
    await this.setVmimStatus(m, AFTER_SYNC[0], { ...addresses, conditions: [] });
  }

  /** The source virt-handler's side: it reads the target's address and ports from its own VMI and
   *  its TLS setting from the KubeVirt CR, and migrates there. */
  private startTransfer(m: VMIM, r: MigrationRecord, connectURL: string, inject: Injection): void {
    if (r.job || !r.receiver) return;
    const job = new AbortController();
    r.job = job;
    const rec = r.receiver;
    const ns = m.metadata?.namespace ?? '';
    void (async () => {
      const vmi = await this.client.get<VMI>(Res.vmi, ns, m.spec.vmiName ?? '', job.signal);
      const ms = vmi.status?.migrationState;
      if (!ms?.targetNodeAddress || !ms.targetDirectMigrationNodePorts) throw new Error(`source VMI ${ns}/${m.spec.vmiName} has no target address in status.migrationState`);
      await this.driver.migrate({
        migrationID: r.migrationID, connectURL, inject,
        tls: { ...((await this.migrationTLS(job.signal)) ? { source: await this.nodeTls(job.signal) } : {}), ...(r.targetTls ? { target: r.targetTls } : {}) },
        endpoint: { address: ms.targetNodeAddress, ports: ms.targetDirectMigrationNodePorts },
        source: { cluster: this.cluster, namespace: ns, name: m.spec.vmiName ?? '' },
        target: { cluster: rec.cluster, namespace: rec.namespace, name: rec.vmi },
      }, job.signal);
    })().then(() => {
      if (!r.outcome) { r.outcome = 'Succeeded'; r.since = Date.now(); }
    }, (e: unknown) => this.hub.fail(r, e instanceof Error ? e.message : String(e)));
  }
}

export type { MigrationEndpoint };

function parsePEM(text: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const b of text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      return []; // ParseCertsPEM fails as a whole
    }
  }
  return out;
}

/** Every field of `want` already has that value in `have` (JSON equality; [] equals absent). */
function sameFields(want: Record<string, unknown>, have: Record<string, unknown>): boolean {
  const norm = (v: unknown) => JSON.stringify(Array.isArray(v) && v.length === 0 ? undefined : v);
  return Object.keys(want).every((k) => norm(want[k]) === norm(have[k]));
}

export { FakeDriver } from './driver.ts';
export type { VmiDriver, MigrationJob, Injection, VmiRef, VmiInstance } from './driver.ts';
