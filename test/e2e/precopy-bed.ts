// The end-to-end bed of the storage pre-copy (issue 13), used by test/e2e/storage-precopy.test.ts
// and `npm run bench:storage -- --operator`: the end-to-end WAN bed (wan-bed.ts: two real
// clusters, sites with a gateway node and workers, WireGuard across wanem, the relay pair on the
// gateway nodes intercepting registered migration flows, the KubeVirt stand-in with the real-QEMU
// driver), plus what the storage pre-copy needs: a node stand-in on the VMs' worker node of each
// site that runs the Pods the operator creates (the storage agents) in that node's namespace and
// provides the claims' storage (QEMU uses the disks of the claims), CDI on the target, the
// receiver relay's seed intake (the target agents seed it when done), and the operator with the
// storage launcher, as `cloudnet operator` wires it.
//
// The operator reaches the source agents' Pod IPs (site A's worker pod subnet) over a veth from
// the root namespace, as an operator Pod would on its cluster's Pod network.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Res } from '../../src/api/resources.ts';
import { kernelCmdline, type WorkloadSpec } from '../../src/qemu/image.ts';
import { siteClustersFrom, siteControllerFactory, wanMigrationControllerFactory } from '../../src/controller/index.ts';
import { KubeAgentLauncher } from '../../src/storage/launch/launcher.ts';
import { AgentStoragePreCopy } from '../../src/storage/provider.ts';
import { onExit } from '../helpers/exit.ts';
import { ensure, FAST_PLAN, vmObject } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';
import { CdiStandIn } from '../standin/cdi-standin.ts';
import { NodeStandIn } from '../standin/node-standin.ts';
import type { NodeInfo } from '../env/wan.ts';
import { startWanBed, type RelaySessionStats, type WanBed } from './wan-bed.ts';

export type { RelaySessionStats };

export const AGENT_IMAGE = 'cloudnet/operator:0.1.0';
/** The receiver relay's seed intake, on gateway B's LAN address. */
const SEED_PORT = 7401;
/** The operator's veth into site A's VM worker node (a /30 of a benchmark range the sites do not use). */
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
  log?: (line: string) => void;
}

export interface PrecopyBed extends WanBed {
  /** The node stand-ins of the VMs' worker nodes (storage agents' Pods, claims' storage). */
  nodeA: NodeStandIn;
  nodeB: NodeStandIn;
}

/** Pod addresses for the node stand-in: the spare top of the node's pod subnet (the bed's CNI routes it). */
const podPool = (n: NodeInfo): string[] => {
  const base = n.podCidr!.split('/')[0].split('.').slice(0, 3).join('.');
  return Array.from({ length: 27 }, (_, i) => `${base}.${100 + i}`);
};

/** The operator's path to a node's pod subnet: a veth from the root namespace into the node. */
function operatorLink(node: NodeInfo): () => void {
  sweepStaleOperatorLinks();
  const rootIf = `cnop${process.pid}`.slice(0, 15);
  execFileSync('ip', ['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', 'op0', 'netns', node.ns]);
  const del = () => { try { execFileSync('ip', ['link', 'del', rootIf], { stdio: 'ignore' }); } catch { /* gone with the namespace */ } };
  const unregister = onExit(del);
  execFileSync('ip', ['addr', 'add', `${OPERATOR_LINK.root}/30`, 'dev', rootIf]);
  execFileSync('ip', ['link', 'set', rootIf, 'up']);
  execFileSync('ip', ['-n', node.ns, 'addr', 'add', `${OPERATOR_LINK.node}/30`, 'dev', 'op0']);
  execFileSync('ip', ['-n', node.ns, 'link', 'set', 'op0', 'up']);
  execFileSync('ip', ['route', 'add', node.podCidr!, 'via', OPERATOR_LINK.node]);
  return () => { del(); unregister(); };
}

export async function startPrecopyBed(o: PrecopyBedOptions = {}): Promise<PrecopyBed> {
  let nodes: { a: NodeStandIn; b: NodeStandIn } | undefined;
  let seedAddr = '';
  const bed = await startWanBed({
    rateBps: o.rateBps ?? 100e6,
    rttMs: o.rttMs ?? 50,
    ...(o.log ? { log: o.log } : {}),
    receiverArgs: (gw) => ['--seed-listen', `${gw.gwLanIp}:${SEED_PORT}`, '--seed-mb', '512'],
    // virt-launcher mounts the VM's claims: the node stand-in's storage for them.
    diskFile: (vmi, disk) => {
      const vol = vmi.spec.volumes?.find((v) => v.name === disk);
      const claim = vol?.dataVolume?.name ?? vol?.persistentVolumeClaim?.claimName;
      const node = vmi.cluster === 'site-a' ? nodes?.a : nodes?.b;
      const image = claim ? node?.volumes.diskImage(vmi.namespace, claim) : undefined;
      return image && existsSync(image) ? image : undefined;
    },
    beforeOperator: async ({ sites, src, dst, workDir }) => {
      const [wa, wb] = [sites.a.nodes[0], sites.b.nodes[0]];
      const unlink = operatorLink(wa);
      seedAddr = `${sites.b.gwLanIp}:${SEED_PORT}`;
      const a = new NodeStandIn({ client: src, nodeName: wa.name, workDir: join(workDir, 'node-a'), podIPs: podPool(wa), hostIP: wa.ip, netns: wa.ns, podInterface: 'pods0', podPrefixLength: 32 });
      const b = new NodeStandIn({ client: dst, nodeName: wb.name, workDir: join(workDir, 'node-b'), podIPs: podPool(wb), hostIP: wb.ip, netns: wb.ns, podInterface: 'pods0', podPrefixLength: 32 });
      a.start();
      b.start();
      nodes = { a, b };
      // CDI on the target: the blank DataVolumes of storage.mode KubeVirt get their claims.
      const cdiB = new CdiStandIn(dst, b.volumes);
      cdiB.start();
      return async () => {
        await cdiB.stop();
        await Promise.all([a.stop(), b.stop()]);
        unlink();
      };
    },
    controllers: (relay) => [
      (d) => wanMigrationControllerFactory({
        plan: FAST_PLAN,
        ...(relay ? { relay } : {}),
        storage: new AgentStoragePreCopy({
          launcher: new KubeAgentLauncher({
            local: d.manager.client, clusters: siteClustersFrom(d.manager.clusters, d.namespace), namespace: d.namespace,
            image: { image: AGENT_IMAGE }, seedRelay: () => seedAddr,
          }),
        }),
      })(d),
      siteControllerFactory({ notReadyRetryMs: 500 }),
    ],
  });
  o.log?.(`pre-copy bed: storage agents on ${bed.sites.a.nodes[0].name} (site A) and ${bed.sites.b.nodes[0].name} (site B), relay seeds on ${bed.sites.b.gwLanIp}:${SEED_PORT}`);
  return { ...bed, nodeA: nodes!.a, nodeB: nodes!.b };
}

/** The finished relay session of a migration's disk mirror (the flow the gateway intercepted on
 *  its way to the target node's published disk port), newer than session `after`. */
export function diskSession(bed: PrecopyBed, migrationID: string, after: number): Promise<RelaySessionStats> {
  const rec = bed.driver.migrations.get(migrationID);
  const destination = rec?.path ? `${rec.path.address}:${rec.path.diskPort}` : undefined;
  return waitFor(async () => bed.relaySessions()
    .filter((s) => s.destination === destination && s.migration?.migrationID === migrationID && s.state === 'closed' && s.id > after)
    .sort((x, y) => y.id - x.id)[0], { what: `relay session of ${migrationID}'s disk mirror to ${destination}`, timeoutMs: 15_000, intervalMs: 250 });
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
  const vm = vmObject(ns, name, { memory: `${o.memoryMiB ?? 128}Mi`, kernelArgs: kernelCmdline(o.workload), disks: [{ name: 'disk0', dataVolume: claim }] });
  await c.create(Res.vm, vm);
  return image;
}
