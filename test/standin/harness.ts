// Two real clusters ("site-a" runs the operator and the source VMs, "site-b" is the target) with
// the cloudnet CRDs, a Site for site-b from config/samples/site.yaml, and a KubeVirt stand-in in
// each. Used by test/integration/wanmigration*.test.ts and site*.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { KubeClient } from '../../src/kube/client.ts';
import { isAlreadyExists, type KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { wanMigrationControllerFactory, siteControllerFactory, type ControllerFactory, type ControllerProviders } from '../../src/controller/index.ts';
import { OPERATOR_DEFAULTS, startOperator, type OperatorConfig, type RunningOperator } from '../../src/operator/main.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { WanMigration } from '../../src/api/wanmigration.ts';
import type { Site } from '../../src/api/site.ts';
import { findCondition } from '../../src/api/conditions.ts';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { applyManifestFile, useClusters, type Cluster } from '../env/index.ts';
import { KubeVirtStandIn, SyncHub, type StandInOptions } from './standin.ts';
import { waitFor } from '../helpers/poll.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const OPERATOR_NS = 'cloudnet-system';
export const FAST_PLAN = { pollMs: 100, blockedRetryMs: 400 };
/** The stand-in moves a phase every ~30 ms: fold its changes for 50 ms, not the production 500. */
export const FAST_COALESCE_MS = 50;

export interface Bed {
  a: Cluster;
  b: Cluster;
  src: KubeClient;
  dst: KubeClient;
  hub: SyncHub;
  standA: KubeVirtStandIn;
  standB: KubeVirtStandIn;
  stop(): Promise<void>;
}

export async function ensure(c: KubeClient, ref: Parameters<KubeClient['create']>[0], obj: KubeObject): Promise<void> {
  try {
    await c.create(ref, obj);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

export function loadSample<T>(file: string): T[] {
  return yaml.loadAll(readFileSync(join(repoRoot, 'config/samples', file), 'utf8')) as T[];
}

/** The Site sample (and its Secret, with the real kubeconfig of `target`) applied to `local`. */
export async function applySiteSample(local: KubeClient, target: Cluster, name = 'site-b'): Promise<Site> {
  const docs = loadSample<KubeObject & { stringData?: Record<string, string> }>('site.yaml');
  const secret = docs.find((d) => d.kind === 'Secret')!;
  const site = docs.find((d) => d.kind === 'Site') as unknown as Site & KubeObject;
  await ensure(local, Res.namespace, { metadata: { name: OPERATOR_NS } });
  secret.metadata!.name = `${name}-kubeconfig`;
  secret.stringData = { kubeconfig: target.kubeconfigYaml };
  await ensure(local, Res.secret, secret);
  site.metadata.name = name;
  site.spec.kubeconfigSecretRef.name = `${name}-kubeconfig`;
  await ensure(local, Res.site, site as unknown as KubeObject);
  return site;
}

type SiteStandIn = Pick<StandInOptions, 'nodeName' | 'nodeAddress' | 'syncDial'>;

export interface BedOptions {
  /** What both stand-ins share beyond their cluster: phase pacing, a VMI driver (default 30 ms phases, no driver). */
  standIn?: Pick<StandInOptions, 'phaseDelayMs' | 'tickMs' | 'driver' | 'migrations'>;
  /** What each stand-in has of its own, site-a's then site-b's: its node, how it dials its sync peer (the multi-node e2e bed). */
  perSite?: [SiteStandIn, SiteStandIn];
  /** The stand-ins' sync addresses, site-a's then site-b's (default TEST-NET addresses nobody dials). */
  syncAddresses?: [string, string];
  /** How long the API servers may take to serve the CRDs (default 60 s: cold clusters on a busy machine). */
  storageTimeoutMs?: number;
}

/**
 * The stand-in bed on two running clusters (with the KubeVirt CRDs): the cloudnet CRDs on site-a,
 * clients for both, a KubeVirt stand-in in each and the Site sample for site-b. Shared by the
 * operator suites (useOperatorBed) and the end-to-end bed (test/e2e/wan-bed.ts).
 */
export async function setupBed(clusters: Cluster[], opts: BedOptions = {}): Promise<Bed> {
  const [a, b] = clusters;
  for (const f of ['crds/cloudnet.io_sites.yaml', 'crds/cloudnet.io_wanmigrations.yaml']) await applyManifestFile(a, join(repoRoot, f));
  const src = new KubeClient(a.kubeConfig, 'site-a');
  const dst = new KubeClient(b.kubeConfig, 'site-b');
  const hub = new SyncHub();
  const [syncA, syncB] = opts.syncAddresses ?? ['192.0.2.1:9185', '192.0.2.2:9185'];
  const standIn = { hub, phaseDelayMs: 30, ...opts.standIn };
  const [ownA, ownB] = opts.perSite ?? [{}, {}];
  const standA = new KubeVirtStandIn({ ...standIn, ...ownA, client: src, syncAddress: syncA });
  const standB = new KubeVirtStandIn({ ...standIn, ...ownB, client: dst, syncAddress: syncB });
  const stop = async (): Promise<void> => {
    await Promise.all([standA.stop(), standB.stop()]);
    await Promise.all([src.rest.close(), dst.rest.close()]);
  };
  try {
    // A CRD can be Established while its storage still answers "storage is (re)initializing".
    await waitFor(async () => {
      await src.create(Res.wanMigration, { metadata: { name: 'storage-probe', namespace: 'default' }, spec: { vmName: 'x', targetSite: 'x', targetNamespace: 'x' } });
      await src.delete(Res.wanMigration, 'default', 'storage-probe');
      await src.list(Res.site);
      for (const c of [src, dst]) for (const ref of [Res.vm, Res.vmi, Res.vmim, Res.kubevirt, Res.dataVolume]) await c.list(ref);
      return true;
    }, { what: 'WanMigration storage ready', timeoutMs: opts.storageTimeoutMs ?? 60_000 });
    await Promise.all([standA.start(), standB.start()]);
    await applySiteSample(src, b);
  } catch (err) {
    await stop();
    throw err;
  }
  return { a, b, src, dst, hub, standA, standB, stop };
}

export function operatorConfig(kubeConfig: KubeConfig): OperatorConfig {
  return {
    kubeConfig,
    namespace: OPERATOR_NS,
    leaderElect: false,
    leaderElectionId: 'cloudnet-test',
    identity: `test-${process.pid}`,
    leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000,
    metricsBindAddress: '0',
    healthProbeBindAddress: '0',
    maxConcurrentReconciles: 4,
    gracefulShutdownTimeoutMs: 5000,
    kubeApiQps: OPERATOR_DEFAULTS.kubeApiQps,
    kubeApiBurst: OPERATOR_DEFAULTS.kubeApiBurst,
  };
}

export function operatorFactories(providers: ControllerProviders = {}): ControllerFactory[] {
  return [wanMigrationControllerFactory({ plan: FAST_PLAN, coalesceMs: FAST_COALESCE_MS, ...providers }), siteControllerFactory({ notReadyRetryMs: 500, ...(providers.link ? { link: providers.link } : {}) })];
}

/** Starts the operator in-process (no leader election) with the WanMigration and Site controllers. */
export function runOperator(bed: Bed, providers: ControllerProviders = {}): Promise<RunningOperator> {
  return startOperator(operatorConfig(bed.a.kubeConfig), operatorFactories(providers));
}

/**
 * The shared setup of the operator suites: two clusters, the stand-in bed, and an in-process
 * operator, handed to `ready` once up. The operator and bed stop before the clusters do, because
 * this `after` is registered ahead of useClusters' own.
 */
export function useOperatorBed(ready: (bed: Bed, op: RunningOperator) => void, providers: ControllerProviders | { factories: ControllerFactory[] } = {}): void {
  let bed: Bed | undefined;
  let op: RunningOperator | undefined;
  after(async () => {
    await op?.stop();
    await bed?.stop();
  });
  useClusters(2, {
    setup: async (clusters) => {
      bed = await setupBed(clusters);
      op = 'factories' in providers
        ? await startOperator(operatorConfig(bed.a.kubeConfig), providers.factories as ControllerFactory[])
        : await runOperator(bed, providers);
      ready(bed, op);
    },
  });
}

export interface VmOptions {
  runStrategy?: string;
  annotations?: Record<string, string>;
  storageClass?: string;
  /** Guest memory (default 512Mi) and the root disk's size (default 1Gi). */
  memory?: string;
  diskSize?: string;
}

/** A VM with a DataVolume disk, a cloud-init Secret and a ConfigMap, like a real workload. */
export async function createVM(c: KubeClient, ns: string, name: string, o: VmOptions = {}): Promise<void> {
  await ensure(c, Res.namespace, { metadata: { name: ns } });
  await ensure(c, Res.secret, { metadata: { name: `${name}-cloudinit`, namespace: ns }, stringData: { userdata: '#cloud-config\n' } });
  await ensure(c, Res.configMap, { metadata: { name: `${name}-config`, namespace: ns }, data: { 'app.conf': 'mode=test\n' } });
  await ensure(c, Res.dataVolume, {
    metadata: { name: `${name}-root`, namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: o.diskSize ?? '1Gi' } }, storageClassName: o.storageClass ?? 'local-path', accessModes: ['ReadWriteOnce'] } },
  });
  await c.create(Res.vm, vmObject(ns, name, {
    memory: o.memory ?? '512Mi', disks: [{ name: 'root', dataVolume: `${name}-root` }],
    extraVolumes: [
      { name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: `${name}-cloudinit` } } },
      { name: 'config', configMap: { name: `${name}-config` } },
    ],
    ...(o.runStrategy ? { runStrategy: o.runStrategy } : {}), ...(o.annotations ? { annotations: o.annotations } : {}),
  }));
}

export interface VmObjectOptions {
  memory: string;
  /** virtio disks, each on a DataVolume. */
  disks: Array<{ name: string; dataVolume: string }>;
  /** Kernel boot of the guest image (the QEMU driver's guests), with these kernel arguments. */
  kernelArgs?: string;
  /** Volumes that are not disks (cloud-init, ConfigMaps). */
  extraVolumes?: Array<Record<string, unknown>>;
  runStrategy?: string;
  annotations?: Record<string, string>;
}

/** A VirtualMachine object (label app=<name>, runStrategy Always unless told). */
export function vmObject(ns: string, name: string, o: VmObjectOptions): KubeObject {
  return {
    metadata: { name, namespace: ns, labels: { app: name }, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      runStrategy: o.runStrategy ?? 'Always',
      template: {
        metadata: { labels: { app: name } },
        spec: {
          domain: {
            ...(o.kernelArgs !== undefined ? { firmware: { kernelBoot: { container: { image: 'cloudnet/guest:local', kernelPath: '/vmlinuz', initrdPath: '/initrd.cpio.gz' }, kernelArgs: o.kernelArgs } } } : {}),
            devices: { disks: o.disks.map((d) => ({ name: d.name, disk: { bus: 'virtio' } })) },
            memory: { guest: o.memory },
          },
          volumes: [...o.disks.map((d) => ({ name: d.name, dataVolume: { name: d.dataVolume } })), ...(o.extraVolumes ?? [])],
        },
      },
    },
  };
}

export function wanMigration(ns: string, name: string, spec: Partial<WanMigration['spec']> & { vmName: string }, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration',
    metadata: { name, namespace: ns, annotations },
    spec: { targetSite: 'site-b', targetNamespace: ns, ...spec },
  };
}

export async function getWM(c: KubeClient, ns: string, name: string): Promise<WanMigration | undefined> {
  return (await c.tryGet(Res.wanMigration, ns, name)) as unknown as WanMigration | undefined;
}

export function waitForPhase(c: KubeClient, ns: string, name: string, phase: string, timeoutMs = 20000): Promise<WanMigration> {
  return waitFor(async () => {
    const wm = await getWM(c, ns, name);
    return wm?.status?.phase === phase ? wm : undefined;
  }, { what: `${ns}/${name} phase ${phase}`, timeoutMs });
}

export function waitForCondition(c: KubeClient, ns: string, name: string, type: string, status: string, reason?: string, timeoutMs = 20000): Promise<WanMigration> {
  return waitFor(async () => {
    const wm = await getWM(c, ns, name);
    const cnd = findCondition(wm?.status?.conditions, type);
    return cnd?.status === status && (!reason || cnd.reason === reason) ? wm : undefined;
  }, { what: `${ns}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`, timeoutMs });
}

interface EventObj extends KubeObject { reason?: string; note?: string; type?: string; regarding?: { name?: string } }

export async function eventsFor(c: KubeClient, ns: string, name: string): Promise<EventObj[]> {
  const list = await c.list<EventObj>(Res.events, ns);
  return list.items.filter((e) => e.regarding?.name === name);
}

export function waitForEvent(c: KubeClient, ns: string, name: string, reason: string, timeoutMs = 10000): Promise<EventObj> {
  return waitFor(async () => (await eventsFor(c, ns, name)).find((e) => e.reason === reason), { what: `Event ${reason} for ${ns}/${name}`, timeoutMs });
}

/** Objects this migration left on the target (by our label), plus VMIMs on both sides. */
export async function leftovers(bed: Bed, ns: string, targetNs: string, uid: string): Promise<string[]> {
  const sel = { labelSelector: `cloudnet.io/migration-uid=${uid}` };
  const out: string[] = [];
  for (const ref of [Res.vm, Res.dataVolume, Res.secret, Res.configMap, Res.vmim]) {
    for (const o of (await bed.dst.list(ref, targetNs, sel)).items) if (!o.metadata?.deletionTimestamp) out.push(`target ${ref.kind} ${o.metadata?.name}`);
  }
  for (const o of (await bed.src.list(Res.vmim, ns, sel)).items) if (!o.metadata?.deletionTimestamp) out.push(`source VMIM ${o.metadata?.name}`);
  return out;
}

/** controller_runtime_reconcile_errors_total of a controller (a crash loop would drive it up). */
export async function reconcileErrors(op: RunningOperator, controller = 'wanmigration'): Promise<number> {
  const m = op.manager.metrics.registry.getSingleMetric('controller_runtime_reconcile_errors_total');
  const v = (await m?.get())?.values ?? [];
  return v.filter((x) => x.labels.controller === controller).reduce((a, x) => a + x.value, 0);
}

/** A point where a test holds migration `mig` of VM `vm`: what sets the hold up and how to see it is reached. */
export interface HoldPoint {
  name: string;
  vmAnnotations?: Record<string, string>;
  wmAnnotations?: Record<string, string>;
  spec?: Partial<WanMigration['spec']>;
  /** Runs after the VM exists, before the WanMigration is created. */
  before?: () => void;
  reached: (ns: string) => Promise<unknown>;
}

/** Creates VM `vm` (and namespace `ns` on both sides), starts WanMigration `mig` of it, and waits
 *  until the migration is held at `h`. */
export async function migrateUntilHeld(bed: Bed, ns: string, h: HoldPoint): Promise<void> {
  await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
  await createVM(bed.src, ns, 'vm', { annotations: h.vmAnnotations ?? {} });
  h.before?.();
  await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', ...h.spec }, h.wmAnnotations));
  await h.reached(ns);
}

/** VMIMs the stand-ins ever saw for one migration (restart safety: must be exactly 2). */
export function vmimCount(bed: Bed, migrationID: string): number {
  return bed.hub.vmimsByMigration.get(migrationID)?.size ?? 0;
}

type VMIMObj = KubeObject & { status?: { phase?: string } };

/** Waits until the source VMIM of the migration in `ns` reports `phase`. */
export function waitForSourceVmimPhase(bed: Bed, ns: string, phase: string, timeoutMs = 20000): Promise<VMIMObj> {
  return waitFor(async () => (await bed.src.list<VMIMObj>(Res.vmim, ns)).items.find((m) => m.status?.phase === phase), { what: `source VMIM in ${ns} at ${phase}`, timeoutMs });
}

/** The source VM is as it was: run strategy Always, VMI Running. */
export async function assertSourceIntact(bed: Bed, ns: string, vm: string): Promise<void> {
  const v = await bed.src.get<KubeObject & { spec: { runStrategy?: string } }>(Res.vm, ns, vm);
  const vmi = await bed.src.get<VMIMObj>(Res.vmi, ns, vm);
  if (v.spec.runStrategy !== 'Always' || vmi.status?.phase !== 'Running') {
    throw new Error(`source VM ${ns}/${vm} not intact: runStrategy ${v.spec.runStrategy}, VMI ${vmi.status?.phase}`);
  }
}
