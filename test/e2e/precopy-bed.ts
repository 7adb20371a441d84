// The end-to-end bed of the storage pre-copy (issue 13), used by test/e2e/storage-precopy.test.ts
// and `npm run bench:storage -- --operator`: two real clusters, the emulated WAN (wanem) with
// WireGuard between the site gateways, the relay pair in the node namespaces (memory and NBD disk
// slots; the receiver takes seeds on its --seed-listen intake), the KubeVirt stand-in with the
// real-QEMU driver whose VMs use the disks of their claims, a node stand-in per site that runs the
// Pods the operator creates (the storage agents) in the site's node namespace, and the operator
// in-process with the storage launcher, as `cloudnet operator` wires it.
//
// The operator reaches the source agents' Pod IPs (site A's node LAN) over a veth from the root
// namespace, as an operator Pod would on its cluster's Pod network.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { kernelCmdline, type WorkloadSpec } from '../../src/qemu/image.ts';
import { siteClustersFrom, siteControllerFactory, wanMigrationControllerFactory } from '../../src/controller/index.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import { KubeAgentLauncher } from '../../src/storage/launch/launcher.ts';
import { AgentStoragePreCopy } from '../../src/storage/provider.ts';
import { applyManifestFile, installKubevirtCrds, startClusters, type Cluster } from '../env/index.ts';
import { createSites, type Sites } from '../env/wan.ts';
import { createWireGuard, type WireGuardTunnel } from '../env/wireguard.ts';
import { onExit } from '../helpers/exit.ts';
import { requireQemu } from '../env/qemu.ts';
import { KubeVirtStandIn, SyncHub } from '../standin/standin.ts';
import { applySiteSample, ensure, FAST_PLAN, operatorConfig } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';
import { CdiStandIn } from '../standin/cdi-standin.ts';
import { NodeStandIn } from '../standin/node-standin.ts';
import { QemuDriver, relayRoute, relaySlotFlags } from '../standin/qemu-driver.ts';
import { RelayStatsProgress } from './relay-progress.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = join(repoRoot, 'node_modules/.bin/node');
const CLI = join(repoRoot, 'src/cli.ts');
export const AGENT_IMAGE = 'cloudnet/operator:0.1.0';
/** The receiver relay's seed intake, in site B's node namespace. */
const SEED_PORT = 7401;
/**
 * Pod IPs. Site B's are a slice of its node LAN (the source agents reach them across the WAN, and
 * WireGuard routes the LANs). Site A's are on the operator's link into its node namespace, in a
 * benchmark range of their own: the root namespace must route them there, and it must never route
 * a range its own interfaces use (this machine's eth0 may sit in 192.0.2.0/24 itself). The source
 * agents only accept connections (from the operator); what they open leaves from the node's address.
 */
const POD_NET = { a: { base: '198.19.1', route: '198.19.1.0/24' }, b: { base: '198.51.100' } };
const OPERATOR_LINK = { root: '198.19.255.1', node: '198.19.255.2' };

/** Removes operator links (cnop<pid>) that a bed of a process that is gone left behind. */
function sweepStaleOperatorLinks(): void {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  for (const m of out.matchAll(/^\d+: (cnop(\d+))[@:]/gm)) {
    try { process.kill(Number(m[2]), 0); } catch {
      try { execFileSync('ip', ['link', 'del', m[1]], { stdio: 'ignore' }); } catch { /* raced */ }
    }
  }
}

export interface PrecopyBedOptions {
  rateBps?: number;
  rttMs?: number;
  slots?: number;
  log?: (line: string) => void;
}

export interface RelaySessionStats { id: number; target?: string; label?: string; state?: string; closeReason?: string; bytesIn?: number; wireBytes?: number; inputSha256?: string; outputSha256?: string }

export interface PrecopyBed {
  a: Cluster;
  b: Cluster;
  src: KubeClient;
  dst: KubeClient;
  sites: Sites;
  wg: WireGuardTunnel;
  driver: QemuDriver;
  nodeA: NodeStandIn;
  nodeB: NodeStandIn;
  operator: RunningOperator;
  workDir: string;
  /** The sender relay's sessions (live and finished), from its stats file. */
  senderSessions(): RelaySessionStats[];
  relayDiagnostics(): string;
  stop(): Promise<void>;
}

function waitForLine(p: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`no ${re} within ${ms} ms: ${buf.slice(-1500)}`)), ms);
    const on = (c: Buffer): void => {
      buf += c.toString();
      if (re.test(buf)) { clearTimeout(timer); p.stderr!.off('data', on); res(); }
    };
    p.stderr!.on('data', on);
    p.once('exit', (code) => { clearTimeout(timer); rej(new Error(`exited (${code}): ${buf.slice(-1500)}`)); });
  });
}

const pool = (base: string) => Array.from({ length: 27 }, (_, i) => `${base}.${100 + i}`);

function readSessions(file: string): RelaySessionStats[] {
  if (!existsSync(file)) return [];
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { sessions?: RelaySessionStats[]; finished?: RelaySessionStats[] };
    return [...(j.sessions ?? []), ...(j.finished ?? [])];
  } catch {
    return []; // being rewritten
  }
}

export async function startPrecopyBed(o: PrecopyBedOptions = {}): Promise<PrecopyBed> {
  requireQemu();
  const log = o.log ?? (() => undefined);
  const workDir = mkdtempSync(join(tmpdir(), 'cloudnet-precopy-'));
  const unregister = onExit(() => rmSync(workDir, { recursive: true, force: true }));
  const cleanups: Array<() => Promise<void> | void> = [() => { rmSync(workDir, { recursive: true, force: true }); unregister(); }];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try { await c(); } catch (e) { log(`teardown: ${String(e)}`); }
    }
  };
  try {
    const [clusters, sites] = await Promise.all([
      startClusters(2, ['site-a', 'site-b']),
      createSites({ rateBps: o.rateBps ?? 100e6, delayMs: (o.rttMs ?? 50) / 2 }),
    ]);
    const [a, b] = clusters;
    cleanups.push(() => Promise.all(clusters.map((c) => c.stop())).then(() => undefined));
    cleanups.push(() => sites.destroy());
    const wg = await createWireGuard(sites);
    cleanups.push(() => wg.destroy());

    // The operator's path to site A's Pod network (a veth into the node namespace).
    sweepStaleOperatorLinks();
    const rootIf = `cnop${process.pid}`.slice(0, 15);
    execFileSync('ip', ['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', 'op0', 'netns', sites.a.nodeNs]);
    const delLink = () => { try { execFileSync('ip', ['link', 'del', rootIf], { stdio: 'ignore' }); } catch { /* gone with the namespace */ } };
    const unregisterLink = onExit(delLink);
    cleanups.push(() => { delLink(); unregisterLink(); });
    execFileSync('ip', ['addr', 'add', `${OPERATOR_LINK.root}/30`, 'dev', rootIf]);
    execFileSync('ip', ['link', 'set', rootIf, 'up']);
    execFileSync('ip', ['-n', sites.a.nodeNs, 'addr', 'add', `${OPERATOR_LINK.node}/30`, 'dev', 'op0']);
    execFileSync('ip', ['-n', sites.a.nodeNs, 'link', 'set', 'op0', 'up']);
    execFileSync('ip', ['route', 'add', POD_NET.a.route, 'via', OPERATOR_LINK.node]);

    // The relay pair: memory and NBD disk slots; the receiver takes seeds from the target agents.
    const slots = o.slots ?? 4;
    const flags = relaySlotFlags(slots, undefined, undefined, sites.b.nodeIp);
    const env = { ...process.env, LOG_LEVEL: 'info' };
    const relayProcs: ChildProcess[] = [];
    cleanups.push(() => { for (const p of relayProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
    const sendStats = join(workDir, 'relay-send.json');
    const receiver = sites.spawn(sites.b.nodeNs, NODE, [CLI, 'relay', 'receive', '--listen', `${sites.b.nodeIp}:7400`, ...flags.receive,
      '--plain-inside-wireguard', '--cache-mb', '256', '--seed-listen', `${sites.b.nodeIp}:${SEED_PORT}`, '--seed-mb', '512',
      '--hash-streams', '--stats-file', join(workDir, 'relay-receive.json')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    relayProcs.push(receiver);
    await waitForLine(receiver, /relay receiver ready/, 30_000);
    const sender = sites.spawn(sites.a.nodeNs, NODE, [CLI, 'relay', 'send', ...flags.send, '--peer', `${sites.b.nodeIp}:7400`,
      '--plain-inside-wireguard', '--cache-mb', '256', '--hash-streams', '--stats-file', sendStats], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    relayProcs.push(sender);
    await waitForLine(sender, /relay sender ready/, 30_000);
    receiver.stderr?.pipe(createWriteStream(join(workDir, 'relay-receive.log')));
    sender.stderr?.pipe(createWriteStream(join(workDir, 'relay-send.log')));

    await Promise.all(clusters.map((c) => installKubevirtCrds(c)));
    for (const f of ['crds/cloudnet.io_sites.yaml', 'crds/cloudnet.io_wanmigrations.yaml']) await applyManifestFile(a, join(repoRoot, f));
    const src = new KubeClient(a.kubeConfig, 'site-a');
    const dst = new KubeClient(b.kubeConfig, 'site-b');
    cleanups.push(() => Promise.all([src.rest.close(), dst.rest.close()]).then(() => undefined));
    await waitFor(async () => {
      await src.list(Res.wanMigration);
      for (const c of [src, dst]) for (const ref of [Res.vm, Res.vmi, Res.vmim, Res.kubevirt, Res.dataVolume, Res.pvc]) await c.list(ref);
      return true;
    }, { what: 'CRD storage ready', timeoutMs: 60_000 });

    // One node per site: the storage agents' Pods and the claims' storage.
    const nodeA = new NodeStandIn({ client: src, nodeName: 'site-a-node', workDir: join(workDir, 'node-a'), podIPs: pool(POD_NET.a.base), hostIP: sites.a.nodeIp, netns: sites.a.nodeNs, podInterface: 'op0', podPrefixLength: 32 });
    const nodeB = new NodeStandIn({ client: dst, nodeName: 'site-b-node', workDir: join(workDir, 'node-b'), podIPs: pool(POD_NET.b.base), hostIP: sites.b.nodeIp, netns: sites.b.nodeNs, podInterface: 'lan0', podPrefixLength: 24 });
    nodeA.start();
    nodeB.start();
    cleanups.push(() => Promise.all([nodeA.stop(), nodeB.stop()]).then(() => undefined));
    // CDI on the target: the blank DataVolumes of storage.mode KubeVirt get their claims.
    const cdiB = new CdiStandIn(dst, nodeB.volumes);
    cdiB.start();
    cleanups.push(() => cdiB.stop());

    const driver = new QemuDriver({
      workDir: join(workDir, 'qemu'),
      sites: { 'site-a': { netns: sites.a.nodeNs, nodeIp: sites.a.nodeIp }, 'site-b': { netns: sites.b.nodeNs, nodeIp: sites.b.nodeIp } },
      route: relayRoute(slots),
      smartStop: { maxDowntimeMs: 10_000 },
      // virt-launcher mounts the VM's claims: the node stand-in's storage for them.
      diskFile: (vmi, disk) => {
        const vol = vmi.spec.volumes?.find((v) => v.name === disk);
        const claim = vol?.dataVolume?.name ?? vol?.persistentVolumeClaim?.claimName;
        const node = vmi.cluster === 'site-a' ? nodeA : nodeB;
        const image = claim ? node.volumes.diskImage(vmi.namespace, claim) : undefined;
        return image && existsSync(image) ? image : undefined;
      },
    });
    execFileSync('mkdir', ['-p', join(workDir, 'qemu')]);
    cleanups.push(() => driver.stopAll());
    const hub = new SyncHub();
    const standA = new KubeVirtStandIn({ client: src, hub, syncAddress: `${sites.a.nodeIp}:9185`, driver, phaseDelayMs: 50, tickMs: 100 });
    const standB = new KubeVirtStandIn({ client: dst, hub, syncAddress: `${sites.b.nodeIp}:9185`, driver, phaseDelayMs: 50, tickMs: 100 });
    await Promise.all([standA.start(), standB.start()]);
    cleanups.push(() => Promise.all([standA.stop(), standB.stop()]).then(() => undefined));
    await applySiteSample(src, b);

    const relay = new RelayStatsProgress({
      statsFile: sendStats,
      sessionTarget: (id) => driver.migrations.get(id)?.label,
      memoryBytes: (id) => driver.migrations.get(id)?.memoryBytes ?? 0,
    });
    const operator = await startOperator(operatorConfig(a.kubeConfig), [
      (d) => wanMigrationControllerFactory({
        plan: FAST_PLAN,
        relay,
        storage: new AgentStoragePreCopy({
          launcher: new KubeAgentLauncher({
            local: d.manager.client, clusters: siteClustersFrom(d.manager.clusters, d.namespace), namespace: d.namespace,
            image: { image: AGENT_IMAGE }, seedRelay: () => `${sites.b.nodeIp}:${SEED_PORT}`,
          }),
        }),
      })(d),
      siteControllerFactory({ notReadyRetryMs: 500 }),
    ]);
    cleanups.push(() => operator.stop());
    log(`pre-copy bed up: WAN ${(o.rateBps ?? 100e6) / 1e6} Mbit/s, RTT ${o.rttMs ?? 50} ms; relay ${sites.a.nodeIp} -> ${sites.b.nodeIp}:7400, seeds on :${SEED_PORT}`);

    return {
      a, b, src, dst, sites, wg, driver, nodeA, nodeB, operator, workDir,
      senderSessions: () => readSessions(sendStats),
      relayDiagnostics: () => ['send', 'receive'].flatMap((side) => {
        const f = join(workDir, `relay-${side}.log`);
        return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => /"level":"(warn|error)"/.test(l)).slice(-10).map((l) => `relay ${side}: ${l}`) : [];
      }).join('\n'),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface PrecopyVmOptions {
  workload: WorkloadSpec;
  memoryMiB?: number;
  diskMiB: number;
  /** The disk's content before the VM starts (written into the claim's disk.img). */
  content: Buffer;
}

/** A VM whose one disk is a DataVolume-backed claim (filesystem mode) holding `content`. */
export async function createClaimVM(bed: PrecopyBed, ns: string, name: string, o: PrecopyVmOptions): Promise<string> {
  const c = bed.src;
  await ensure(c, Res.namespace, { metadata: { name: ns } });
  await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
  const claim = `${name}-disk0`;
  const storage = { resources: { requests: { storage: `${o.diskMiB}Mi` } }, storageClassName: 'local-path', accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' };
  await ensure(c, Res.pvc, { metadata: { name: claim, namespace: ns }, spec: storage });
  // The disk was imported before (CDI's prePopulated: the claim holds it; here, `content`).
  await ensure(c, Res.dataVolume, { metadata: { name: claim, namespace: ns, annotations: { 'cdi.kubevirt.io/storage.prePopulated': claim } }, spec: { source: { blank: {} }, storage } });
  const dir = await waitFor(async () => bed.nodeA.volumes.get(ns, claim), { what: `claim ${claim} bound`, timeoutMs: 30_000, intervalMs: 100 });
  const image = join(dir.path, 'disk.img');
  const fd = openSync(image, 'w');
  writeSync(fd, o.content);
  closeSync(fd);
  const vm: KubeObject = {
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels: { app: name } },
        spec: {
          domain: {
            firmware: { kernelBoot: { container: { image: 'cloudnet/guest:local', kernelPath: '/vmlinuz', initrdPath: '/initrd.cpio.gz' }, kernelArgs: kernelCmdline(o.workload) } },
            devices: { disks: [{ name: 'disk0', disk: { bus: 'virtio' } }] },
            memory: { guest: `${o.memoryMiB ?? 128}Mi` },
          },
          volumes: [{ name: 'disk0', dataVolume: { name: claim } }],
        },
      },
    },
  };
  await c.create(Res.vm, vm);
  return image;
}
