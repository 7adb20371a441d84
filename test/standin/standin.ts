// The KubeVirt stand-in: a small polling controller that acts out KubeVirt 1.7's documented
// behaviour for VirtualMachine, VirtualMachineInstance and VirtualMachineInstanceMigration on a
// real API server, including decentralized (cross-cluster) live migration:
//  - KubeVirt CR `kubevirt/kubevirt` (feature gate DecentralizedLiveMigration, status
//    synchronizationAddresses) and ConfigMap `kubevirt/kubevirt-ca` (key ca-bundle);
//  - a VM with runStrategy Always gets a VMI that goes Scheduling → Running with Ready and
//    LiveMigratable conditions; Halted removes it; a VMI without its VM is deleted (no GC here);
//  - a VM with runStrategy WaitAsReceiver gets a receiver VMI (phase WaitingForSync) and
//    printableStatus WaitingForReceiver;
//  - a VMIM with spec.receive publishes status.synchronizationAddresses and mirrors the migration;
//  - a VMIM with spec.sendTo goes Pending → Scheduling → Scheduled → WaitingForSync, pairs with the
//    receiver through the SyncHub (the in-process stand-in for the synchronization controllers'
//    gRPC channel) when its connectURL is the receiver's address, then Synchronizing → Running →
//    Succeeded; the target VMI then runs, the target VM switches to the run strategy named by
//    kubevirt.io/restore-run-strategy, and the source VMI ends Succeeded;
//  - deleting either VMIM cancels: the other fails, the source keeps running; a failed migration
//    leaves the receiver VMI Failed (KubeVirt does not retry decentralized migrations).
// Failures and hangs on demand come from annotations on the source VM (ANNOTATIONS below).
import { randomBytes } from 'node:crypto';
import type {
  V1VirtualMachine, V1VirtualMachineInstance, V1VirtualMachineInstanceMigration,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient } from '../../src/kube/client.ts';
import { isAlreadyExists, type KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/controller/resources.ts';
import { FakeDriver, type Injection, type VmiDriver, type VmiRef } from './driver.ts';

export const ANNOTATIONS = {
  /** "false": the VMI reports LiveMigratable=False. */
  liveMigratable: 'standin.cloudnet.io/live-migratable',
  /** VMIM phase at which the migration stops progressing (a KubeVirt hang). */
  hangAt: 'standin.cloudnet.io/hang-at',
  /** VMIM phase at which the migration fails. */
  failAt: 'standin.cloudnet.io/fail-at',
  /** Message of a True decentralizedMigrationBlocked condition. */
  blocked: 'standin.cloudnet.io/blocked',
} as const;

const RESTORE = 'kubevirt.io/restore-run-strategy';

type VM = V1VirtualMachine & KubeObject;
type VMI = V1VirtualMachineInstance & KubeObject;
type VMIM = V1VirtualMachineInstanceMigration & KubeObject;

type RecordPhase = 'WaitingForSync' | 'Synchronizing' | 'Running' | 'Succeeded' | 'Failed';

interface MigrationRecord {
  migrationID: string;
  phase: RecordPhase;
  since: number;
  failureReason?: string;
  blocked?: string;
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
    if (!r) this.records.set(id, (r = { migrationID: id, phase: 'WaitingForSync', since: Date.now() }));
    return r;
  }

  fail(r: MigrationRecord, reason: string): void {
    if (r.phase === 'Succeeded' || r.phase === 'Failed') return;
    r.phase = 'Failed';
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

function fakeCABundle(): string {
  const body = randomBytes(48).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
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
  private readonly abort = new AbortController();
  private readonly lastChange = new Map<string, number>();
  private readonly starting = new Set<string>();
  /** Receiver VMIs (by uid) whose driver listens; the receiving VMIM waits for it. */
  private readonly prepared = new Set<string>();
  private readonly preparing = new Set<string>();
  private seenVmims = new Map<string, string>(); // uid → migrationID
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
    this.driver = o.driver ?? new FakeDriver(this.delay);
    this.featureGates = o.featureGates ?? ['DecentralizedLiveMigration'];
  }

  get cluster(): string {
    return this.client.clusterName;
  }

  /** Publishes the KubeVirt CR and kubevirt-ca, then starts the control loop. */
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
    await this.createIfMissing(Res.configMap, { metadata: { name: 'kubevirt-ca', namespace: this.ns }, data: { 'ca-bundle': fakeCABundle() } });
    await this.createIfMissing(Res.kubevirt, {
      metadata: { name: 'kubevirt', namespace: this.ns },
      spec: { configuration: { developerConfiguration: { featureGates: this.featureGates } } },
    });
    await c.patchStatus(Res.kubevirt, this.ns, 'kubevirt', {
      phase: 'Deployed', observedKubeVirtVersion: 'v1.7.0-standin', synchronizationAddresses: [this.syncAddress],
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

  /** True when `id` changed phase at least phaseDelayMs ago (then stamps the change). */
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
  }

  private ref(o: KubeObject): VmiRef {
    return { cluster: this.cluster, namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '' };
  }

  // ---- VirtualMachine / VirtualMachineInstance ----

  private async syncVM(vm: VM, vmi: VMI | undefined, signal: AbortSignal): Promise<void> {
    const c = this.client;
    const rs = runStrategy(vm);
    const ns = vm.metadata?.namespace ?? '';
    const name = vm.metadata?.name ?? '';
    if (vm.metadata?.deletionTimestamp) return;
    if (rs === 'Halted') {
      if (vmi && !vmi.metadata?.deletionTimestamp) {
        await this.driver.stop(this.ref(vmi));
        await c.delete(Res.vmi, ns, name);
      }
    } else if (!vmi) {
      const receiver = rs === 'WaitAsReceiver';
      if (receiver && this.holdReceivers) return;
      await c.create(Res.vmi, {
        apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance',
        metadata: {
          name, namespace: ns, labels: vm.spec.template.metadata?.labels ?? {},
          ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name, uid: vm.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true }],
        },
        spec: vm.spec.template.spec ?? { domain: { devices: {} } },
      });
      await c.patchStatus(Res.vmi, ns, name, receiver
        ? { phase: 'WaitingForSync', conditions: [] }
        : { phase: 'Scheduling', conditions: [] });
      this.stamp(`vmi:${ns}/${name}`);
      vmi = undefined;
    } else if (vmi.status?.phase === 'Scheduling' && !this.starting.has(key(vmi))) {
      const k = key(vmi);
      this.starting.add(k);
      const live = vm.metadata?.annotations?.[ANNOTATIONS.liveMigratable] !== 'false';
      void this.driver.start({ ...this.ref(vmi), spec: vmi.spec }, signal).then(
        () => c.patchStatus(Res.vmi, ns, name, {
          phase: 'Running', nodeName: `${this.cluster}-node`,
          conditions: [
            { type: 'Ready', status: 'True' },
            live ? { type: 'LiveMigratable', status: 'True' } : { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: 'stand-in: marked not live-migratable by annotation' },
            { type: 'StorageLiveMigratable', status: 'True' },
          ],
        }),
      ).catch(() => { this.errors++; }).finally(() => this.starting.delete(k));
    }
    const phase = vmi?.status?.phase;
    const printable = rs === 'WaitAsReceiver' ? 'WaitingForReceiver' : rs === 'Halted' ? 'Stopped' : phase === 'Running' ? 'Running' : phase === 'Succeeded' ? 'Succeeded' : phase === 'Failed' ? 'Failed' : 'Starting';
    if (vm.status?.printableStatus !== printable) {
      await c.patchStatus(Res.vm, ns, name, { printableStatus: printable, ready: printable === 'Running', created: !!vmi });
    }
  }

  // ---- VirtualMachineInstanceMigration ----

  private async cancelVanishedVmims(current: VMIM[]): Promise<void> {
    const now = new Map<string, string>();
    for (const m of current) {
      const id = m.spec.receive?.migrationID ?? m.spec.sendTo?.migrationID;
      if (id && m.metadata?.uid && !m.metadata.deletionTimestamp) now.set(m.metadata.uid, id);
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
    if (cur === phase && JSON.stringify(extra) === JSON.stringify(pick((m.status ?? {}) as Record<string, unknown>, Object.keys(extra)))) return;
    await this.client.patchStatus(Res.vmim, m.metadata?.namespace, m.metadata?.name ?? '', body);
  }

  private async syncVmim(m: VMIM, vmBy: Map<string, VM>, vmiBy: Map<string, VMI>): Promise<void> {
    if (m.metadata?.deletionTimestamp) return;
    const ns = m.metadata?.namespace ?? '';
    const vmiName = m.spec.vmiName ?? '';
    const vmi = vmiBy.get(`${ns}/${vmiName}`);
    if (m.spec.receive) await this.syncReceiver(m, vmi, vmBy.get(`${ns}/${vmiName}`));
    else if (m.spec.sendTo) await this.syncSender(m, vmi, vmBy.get(`${ns}/${vmiName}`));
  }

  private blockedCondition(r: MigrationRecord): Record<string, unknown> {
    return r.blocked
      ? { conditions: [{ type: 'decentralizedMigrationBlocked', status: 'True', reason: 'Blocked', message: r.blocked }] }
      : {};
  }

  private async syncReceiver(m: VMIM, vmi: VMI | undefined, vm: VM | undefined): Promise<void> {
    const id = m.spec.receive!.migrationID;
    const cur = m.status?.phase ?? '';
    if (terminal(cur)) return;
    const r = this.hub.record(id);
    r.receiver = { cluster: this.cluster, namespace: m.metadata?.namespace ?? '', vmim: m.metadata?.name ?? '', vmi: m.spec.vmiName ?? '', address: this.syncAddress };
    if (!cur) { await this.setVmimStatus(m, 'Pending'); return; }
    if (!vmi) return; // the receiver VMI appears once the WaitAsReceiver VM exists
    const vk = vmi.metadata?.uid ?? key(vmi);
    if (!this.prepared.has(vk)) {
      if (!this.preparing.has(vk)) {
        this.preparing.add(vk);
        void this.driver.prepareReceiver({ ...this.ref(vmi), spec: vmi.spec }, id, this.abort.signal)
          .then(() => { this.prepared.add(vk); }, () => { this.errors++; })
          .finally(() => this.preparing.delete(vk));
      }
      return;
    }
    if (!this.ready(`vmim:${m.metadata?.uid}`)) return;
    const state = { synchronizationAddresses: [this.syncAddress], ...this.blockedCondition(r) };
    if (r.phase === 'Failed') {
      await this.setVmimStatus(m, 'Failed', { ...state, migrationState: { failed: true, failureReason: r.failureReason, endTimestamp: new Date().toISOString() } });
      await this.client.patchStatus(Res.vmi, vmi.metadata?.namespace, vmi.metadata?.name ?? '', {
        phase: 'Failed', conditions: [{ type: 'DecentralizedLiveMigrationFailure', status: 'True', reason: 'MigrationFailed', message: r.failureReason ?? '' }],
      });
      return;
    }
    if (r.phase === 'Succeeded' && this.holdCompletion) return;
    if (r.phase === 'Succeeded') {
      await this.client.patchStatus(Res.vmi, vmi.metadata?.namespace, vmi.metadata?.name ?? '', {
        phase: 'Running', nodeName: `${this.cluster}-node`,
        conditions: [{ type: 'Ready', status: 'True' }, { type: 'LiveMigratable', status: 'True' }, { type: 'StorageLiveMigratable', status: 'True' }],
        migrationState: { completed: true, migrationUid: id, endTimestamp: new Date().toISOString(), targetNode: `${this.cluster}-node` },
      });
      const restore = vm?.metadata?.annotations?.[RESTORE];
      if (vm && runStrategy(vm) === 'WaitAsReceiver') {
        await this.client.patchMerge(Res.vm, vm.metadata?.namespace, vm.metadata?.name ?? '', {
          metadata: { annotations: { [RESTORE]: null } }, spec: { runStrategy: restore ?? 'Always' },
        });
      }
      await this.setVmimStatus(m, 'Succeeded', { ...state, migrationState: { completed: true, endTimestamp: new Date().toISOString() } });
      return;
    }
    await this.setVmimStatus(m, r.phase, state);
  }

  private async syncSender(m: VMIM, vmi: VMI | undefined, vm: VM | undefined): Promise<void> {
    const send = m.spec.sendTo!;
    const id = send.migrationID;
    const cur = m.status?.phase ?? '';
    if (terminal(cur)) return;
    const uidKey = `vmim:${m.metadata?.uid}`;
    const r = this.hub.record(id);
    const inject = injection(vm);
    r.sender = { cluster: this.cluster, namespace: m.metadata?.namespace ?? '', vmim: m.metadata?.name ?? '', vmi: m.spec.vmiName ?? '', connectURL: send.connectURL, inject };
    r.blocked = inject.blocked;
    if (!this.ready(uidKey)) return;
    if (!vmi || vmi.status?.phase !== 'Running') {
      if (!terminal(r.phase)) this.hub.fail(r, `source VMI ${m.spec.vmiName} is not running`);
    }
    if (r.phase === 'Failed') {
      await this.setVmimStatus(m, 'Failed', { ...this.blockedCondition(r), migrationState: { failed: true, failureReason: r.failureReason, endTimestamp: new Date().toISOString() } });
      return;
    }
    if (r.phase === 'Succeeded') {
      if (vmi) {
        await this.client.patchStatus(Res.vmi, vmi.metadata?.namespace, vmi.metadata?.name ?? '', {
          phase: 'Succeeded',
          migrationState: { completed: true, migrationUid: id, endTimestamp: new Date().toISOString(), sourceNode: `${this.cluster}-node` },
        });
        await this.driver.stop(this.ref(vmi));
      }
      await this.setVmimStatus(m, 'Succeeded', { migrationState: { completed: true, endTimestamp: new Date().toISOString() } });
      return;
    }
    // Local scheduling first, then the decentralized phases.
    const order = ['', 'Pending', 'Scheduling', 'Scheduled', 'WaitingForSync', 'Synchronizing', 'Running'];
    const next = order[order.indexOf(cur) + 1] ?? cur;
    if (inject.hangAt && cur === inject.hangAt) return;
    if (inject.failAt && next === inject.failAt) {
      this.hub.fail(r, `stand-in: injected failure at ${next}`);
      return;
    }
    switch (cur) {
      case '': case 'Pending': case 'Scheduling':
        await this.setVmimStatus(m, next);
        return;
      case 'Scheduled':
        await this.setVmimStatus(m, 'WaitingForSync', this.blockedCondition(r));
        return;
      case 'WaitingForSync': {
        // Pairs only when the receiver exists and the connectURL reaches its sync controller.
        if (r.blocked || !r.receiver || r.receiver.address !== send.connectURL || r.phase !== 'WaitingForSync') return;
        r.phase = 'Synchronizing';
        r.since = Date.now();
        await this.setVmimStatus(m, 'Synchronizing', { migrationState: { startTimestamp: new Date().toISOString(), sourceNode: `${this.cluster}-node`, migrationUid: id } });
        return;
      }
      case 'Synchronizing': {
        if (r.job) return;
        r.phase = 'Running';
        r.since = Date.now();
        const job = new AbortController();
        r.job = job;
        const rec = r.receiver!;
        void this.driver.migrate({
          migrationID: id, connectURL: send.connectURL, inject,
          source: { cluster: this.cluster, namespace: m.metadata?.namespace ?? '', name: m.spec.vmiName ?? '' },
          target: { cluster: rec.cluster, namespace: rec.namespace, name: rec.vmi },
        }, job.signal).then(() => {
          if (r.phase === 'Running') { r.phase = 'Succeeded'; r.since = Date.now(); }
        }, (e: unknown) => this.hub.fail(r, e instanceof Error ? e.message : String(e)));
        await this.setVmimStatus(m, 'Running');
        return;
      }
      default:
        return;
    }
  }
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export { FakeDriver } from './driver.ts';
export type { VmiDriver, MigrationJob, Injection, VmiRef, VmiInstance } from './driver.ts';
