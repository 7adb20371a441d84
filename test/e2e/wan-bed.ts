// The end-to-end bed, shared by test/e2e and `npm run demo` (hack/demo.ts): two real clusters
// (site-a runs the operator and the source VMs, site-b is the target) and two sites built the way a
// real deployment is laid out:
//  - each site has a gateway node (WireGuard to the peer across the emulated WAN, wanem) and two
//    worker nodes with pod subnets; VMs run on node-2, a worker. Workers have no route out of the
//    site but what the route agent (`cloudnet route-agent`, the chart's DaemonSet) adds: the peer
//    site's networks via the gateway node;
//  - optionally the CloudNet relay pair on the gateway nodes: the sender with its registration API
//    and nftables interception (`cloudnet relay send --api ... --intercept nft`), the receiver
//    delivering flows to their original destinations in site B (plain TCP inside WireGuard);
//  - the KubeVirt stand-in in each cluster with the real-QEMU driver: the source dials the target
//    node's published migration address and ports, nothing else; migration TLS as the KubeVirt
//    CRs say (off by default here, so that the relay can optimize; see migrationTLS);
//  - the operator in-process, registering each relayed migration's flows with the sender's API.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../src/kube/client.ts';
import { Res } from '../../src/api/resources.ts';
import type { MigrationSample } from '../../src/qemu/migrate.ts';
import type { WorkloadSpec } from '../../src/qemu/image.ts';
import { kernelCmdline } from '../../src/qemu/image.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import type { ControllerFactory } from '../../src/controller/index.ts';
import { RelayApiClient } from '../../src/operator/relay-client/api-client.ts';
import { vmGuestMemoryBytes } from '../../src/operator/relay-client/guest-memory.ts';
import { parseRelayApiSetting } from '../../src/operator/relay-client/relay-config.ts';
import { RelayApiProvider } from '../../src/operator/relay-client/relay-provider.ts';
import { installKubevirtCrds, startClusters } from '../env/index.ts';
import { createSites, type SiteInfo, type Sites } from '../env/wan.ts';
import { createWireGuard, type WireGuardTunnel } from '../env/wireguard.ts';
import { onExit } from '../helpers/exit.ts';
import { requireQemu } from '../env/qemu.ts';
import { CLI, NODE, waitForLog } from '../env/relay-cli.ts';
import { ensure, operatorConfig, runOperator, setupBed, vmObject, type Bed } from '../standin/harness.ts';
import { memoryMiB, QemuDriver, type QemuDriverOptions } from '../standin/qemu-driver.ts';

const RELAY_PORT = 7400;

export interface WanBedOptions {
  rateBps?: number;
  rttMs?: number;
  /** The relay pair and interception on the gateway nodes (default true). */
  relay?: boolean;
  relayCacheMb?: number;
  diskMiB?: number;
  /** KubeVirt's migration TLS on both clusters (KubeVirt's default is on; the bed's is off). */
  migrationTLS?: boolean;
  onSample?: (migrationID: string, s: MigrationSample) => void;
  log?: (line: string) => void;
  /** More flags for the receiver relay (e.g. a seed intake on gateway B's LAN address). */
  receiverArgs?: (gatewayB: SiteInfo) => string[];
  /** The file behind a VMI's disk when a volume provides it (QemuDriverOptions.diskFile). */
  diskFile?: QemuDriverOptions['diskFile'];
  /** Runs once the stand-ins are up, before the operator starts (more of the sites: nodes, CDI);
   *  returns its teardown. */
  beforeOperator?: (bed: Bed & { sites: Sites; driver: QemuDriver; workDir: string }) => Promise<() => Promise<void> | void>;
  /** The operator's controllers, given the relay provider (default: the harness's, with it). */
  controllers?: (relay: RelayApiProvider | undefined) => ControllerFactory[];
}

/** A session in the sender relay's stats. */
export interface RelaySessionStats {
  id: number;
  target?: string;
  destination?: string;
  migration?: { namespace: string; name: string; migrationID: string };
  state?: string;
  closeReason?: string;
  bytesIn?: number;
  wireBytes?: number;
  inputSha256?: string;
  outputSha256?: string;
  opaque?: boolean;
}

/** The stand-in bed (clusters, clients, stand-ins, hub) plus the WAN, the relays and the operator. */
export interface WanBed extends Bed {
  sites: Sites;
  wg: WireGuardTunnel;
  driver: QemuDriver;
  operator: RunningOperator;
  workDir: string;
  relayStatsFile?: string;
  /** The sender relay's registration API (what the operator registers flows with). */
  relayApi?: RelayApiClient;
  relayProcs: ChildProcess[];
  /** Kills the relay pair (failure injection). */
  killRelay(): void;
  /** Relay warnings/errors and the close reasons of failed sessions, for failure messages. */
  relayDiagnostics(): string;
  /** Byte-exactness of the relay: SHA-256 of each finished session's input at the sender vs its
   *  output at the receiver (both run with --hash-streams), from their stats files. */
  relayStreamCheck(): RelayStreamCheck;
  /** The sender's sessions (live and finished), each naming the WanMigration that registered it. */
  relaySessions(): RelaySessionStats[];
  /** Switches KubeVirt's migration TLS on both clusters (spec.configuration.migrations.disableTLS). */
  setMigrationTLS(on: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** `cloudnet route-agent` on each worker node of `site`: the peer's networks via the gateway node. */
async function startRouteAgents(sites: Sites, site: SiteInfo, peer: SiteInfo, procs: ChildProcess[], workDir: string): Promise<void> {
  for (const n of site.nodes) {
    const p = sites.spawn(n.ns, NODE, [CLI, 'route-agent', '--via', site.gwLanIp, ...peer.networks.flatMap((x) => ['--network', x])],
      { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    await waitForLog(p, /route agent ready/, 30_000);
    p.stderr?.pipe(createWriteStream(join(workDir, `route-agent-${n.ns}.log`)));
  }
}

export async function startWanBed(o: WanBedOptions = {}): Promise<WanBed> {
  requireQemu();
  const log = o.log ?? (() => undefined);
  const workDir = mkdtempSync(join(tmpdir(), 'cloudnet-e2e-'));
  const unregister = onExit(() => rmSync(workDir, { recursive: true, force: true }));
  const cleanups: Array<() => Promise<void> | void> = [() => { rmSync(workDir, { recursive: true, force: true }); unregister(); }];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try { await c(); } catch (e) { log(`teardown: ${String(e)}`); }
    }
  };
  try {
    const rttMs = o.rttMs ?? 50;
    const [clusters, sites] = await Promise.all([
      startClusters(2, ['site-a', 'site-b']),
      createSites({ rateBps: o.rateBps ?? 100e6, delayMs: rttMs / 2, workers: 2, nodeRoutes: 'agent', podNetworks: true }),
    ]);
    cleanups.push(() => Promise.all(clusters.map((c) => c.stop())).then(() => undefined));
    cleanups.push(() => sites.destroy());
    const wg = await createWireGuard(sites);
    cleanups.push(() => wg.destroy());
    log(`WireGuard up: ${wg.a.ifname} ${wg.a.tunnelIp} (gateway node A) <-> ${wg.b.ifname} ${wg.b.tunnelIp} (gateway node B); site networks ${sites.a.networks.join(', ')} <-> ${sites.b.networks.join(', ')}`);
    const agents: ChildProcess[] = [];
    cleanups.push(() => { for (const p of agents) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); });
    await startRouteAgents(sites, sites.a, sites.b, agents, workDir);
    await startRouteAgents(sites, sites.b, sites.a, agents, workDir);
    log(`route agents up on the worker nodes (${[...sites.a.nodes, ...sites.b.nodes].map((n) => n.ip).join(', ')}): peer networks via their gateway node`);

    const relayProcs: ChildProcess[] = [];
    let relayStatsFile: string | undefined;
    let relayApi: { url: string; token: string; client: RelayApiClient } | undefined;
    if (o.relay ?? true) {
      const cache = String(o.relayCacheMb ?? 256);
      relayStatsFile = join(workDir, 'relay-send.json');
      const token = randomBytes(24).toString('hex');
      const tokenFile = join(workDir, 'relay-api.token');
      writeFileSync(tokenFile, token, { mode: 0o600 });
      const apiSocket = join(workDir, 'relay-api.sock');
      const env = { ...process.env, LOG_LEVEL: 'info' };
      const receiver = sites.spawn(sites.b.gwNs, NODE, [CLI, 'relay', 'receive', '--listen', `${wg.b.tunnelIp}:${RELAY_PORT}`,
        ...sites.b.networks.flatMap((n) => ['--allow-destination', n]), ...(o.receiverArgs?.(sites.b) ?? []),
        '--plain-inside-wireguard', '--cache-mb', cache, '--hash-streams', '--stats-file', join(workDir, 'relay-receive.json')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      relayProcs.push(receiver);
      cleanups.push(() => { for (const p of relayProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
      await waitForLog(receiver, /relay receiver ready/, 30_000);
      const sender = sites.spawn(sites.a.gwNs, NODE, [CLI, 'relay', 'send', '--peer', `${wg.b.tunnelIp}:${RELAY_PORT}`,
        '--api', `unix:${apiSocket}`, '--api-token-file', tokenFile, '--intercept', 'nft',
        '--plain-inside-wireguard', '--cache-mb', cache, '--hash-streams', '--stats-file', relayStatsFile], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      relayProcs.push(sender);
      await waitForLog(sender, /relay sender ready/, 30_000);
      // Keep their logs (a full pipe would stall them) for diagnostics.
      receiver.stderr?.pipe(createWriteStream(join(workDir, 'relay-receive.log')));
      sender.stderr?.pipe(createWriteStream(join(workDir, 'relay-send.log')));
      const apiUrl = `unix://${apiSocket}`;
      relayApi = { url: apiUrl, token, client: new RelayApiClient({ url: apiUrl, token }) };
      log(`relay pair up on the gateway nodes: sender ${sites.a.gwLanIp} (registration API ${apiUrl}, nftables interception of registered flows) -> receiver ${wg.b.tunnelIp}:${RELAY_PORT} (delivers to ${sites.b.networks.join(', ')}), plain TCP inside WireGuard`);
    }

    // VMs run on node-2 of each site: a worker, not the gateway node.
    const [nodeA, nodeB] = [sites.a.nodes[0], sites.b.nodes[0]];
    const driver = new QemuDriver({
      workDir,
      sites: { 'site-a': { netns: nodeA.ns, nodeIp: nodeA.ip }, 'site-b': { netns: nodeB.ns, nodeIp: nodeB.ip } },
      diskMiB: o.diskMiB,
      ...(o.diskFile ? { diskFile: o.diskFile } : {}),
      onSample: o.onSample,
      // A CPU-starved run measures a lower stream rate: allow more downtime before leaving it to QEMU.
      smartStop: { maxDowntimeMs: 10_000 },
    });
    cleanups.push(() => driver.stopAll());

    await Promise.all(clusters.map((c) => installKubevirtCrds(c)));
    const migrations = { disableTLS: !(o.migrationTLS ?? false) };
    // The synchronization controllers run on node-3 of each site: a port that answers there, and
    // the sender's controller dials its peer's from its own node before the pair meets (through
    // the route agent and the gateways, like the migration itself; the state itself goes through
    // the in-process SyncHub).
    const sync = { a: sites.a.nodes[1], b: sites.b.nodes[1] };
    const syncProcs = [sync.a, sync.b].map((n) => sites.spawn(n.ns, 'socat', [`TCP-LISTEN:9185,bind=${n.ip},reuseaddr,fork`, 'EXEC:/bin/true'], { stdio: 'ignore' }));
    cleanups.push(() => { for (const p of syncProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
    const dialFrom = (ns: string) => async (address: string): Promise<void> => {
      await sites.exec(ns, 'socat', ['-u', 'OPEN:/dev/null', `TCP:${address},connect-timeout=3`], { timeoutMs: 5000 });
    };
    const standInBed = await setupBed(clusters, {
      standIn: { driver, phaseDelayMs: 50, tickMs: 100, migrations },
      syncAddresses: [`${sync.a.ip}:9185`, `${sync.b.ip}:9185`],
      perSite: [
        { nodeName: nodeA.name, nodeAddress: nodeA.ip, syncDial: dialFrom(sync.a.ns) },
        { nodeName: nodeB.name, nodeAddress: nodeB.ip, syncDial: dialFrom(sync.b.ns) },
      ],
    });
    cleanups.push(() => standInBed.stop());
    const { src, dst } = standInBed;

    const relayProvider = relayApi ? new RelayApiProvider({
      setting: parseRelayApiSetting(`site-b=${relayApi.url}`), token: relayApi.token,
      memoryBytes: async (m, signal) => { const vm = await src.tryGet(Res.vm, m.metadata.namespace, m.spec.vmName, signal); return vm ? vmGuestMemoryBytes(vm) : undefined; },
    }) : undefined;
    if (o.beforeOperator) cleanups.push(await o.beforeOperator({ ...standInBed, sites, driver, workDir }));
    const operator = o.controllers
      ? await startOperator(operatorConfig(standInBed.a.kubeConfig), o.controllers(relayProvider))
      : await runOperator(standInBed, relayProvider ? { relay: relayProvider } : {});
    cleanups.push(() => operator.stop());

    const bed: WanBed = {
      ...standInBed, sites, wg, driver, operator, workDir, relayStatsFile, relayApi: relayApi?.client, relayProcs,
      killRelay() { for (const p of relayProcs) p.kill('SIGKILL'); },
      relayDiagnostics() { return relayDiagnostics(workDir); },
      relayStreamCheck() { return relayStreamCheck(workDir); },
      relaySessions() { return allSessions(join(workDir, 'relay-send.json')); },
      async setMigrationTLS(on) {
        for (const c of [src, dst]) await c.patchMerge(Res.kubevirt, 'kubevirt', 'kubevirt', { spec: { configuration: { migrations: { disableTLS: !on } } } });
      },
      stop,
    };
    return bed;
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface RelayStreamCheck {
  /** Sessions both relays hashed (finished cleanly on both sides). */
  compared: number;
  /** Session ids whose sender input and receiver output differ. */
  mismatched: number[];
}

/** A relay's stats file (`--stats-file`): its open and its finished sessions. */
function readSessions(file: string): { sessions: RelaySessionStats[]; finished: RelaySessionStats[] } {
  if (!existsSync(file)) return { sessions: [], finished: [] };
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { sessions?: RelaySessionStats[]; finished?: RelaySessionStats[] };
    return { sessions: j.sessions ?? [], finished: j.finished ?? [] };
  } catch {
    return { sessions: [], finished: [] }; // being rewritten: the next read sees it
  }
}

const allSessions = (file: string): RelaySessionStats[] => { const r = readSessions(file); return [...r.sessions, ...r.finished]; };

function relayStreamCheck(dir: string): RelayStreamCheck {
  const input = new Map<number, string>();
  for (const s of allSessions(join(dir, 'relay-send.json'))) if (s.inputSha256) input.set(s.id, s.inputSha256);
  const out: RelayStreamCheck = { compared: 0, mismatched: [] };
  for (const s of allSessions(join(dir, 'relay-receive.json'))) {
    const sent = input.get(s.id);
    if (!sent || !s.outputSha256) continue;
    out.compared++;
    if (sent !== s.outputSha256) out.mismatched.push(s.id);
  }
  return out;
}

function relayDiagnostics(dir: string): string {
  const out: string[] = [];
  for (const side of ['send', 'receive']) {
    const log = join(dir, `relay-${side}.log`);
    if (existsSync(log)) {
      const bad = readFileSync(log, 'utf8').split('\n').filter((l) => /"level":"(warn|error)"/.test(l));
      out.push(...bad.slice(-10).map((l) => `relay ${side}: ${l}`));
    }
    for (const f of readSessions(join(dir, `relay-${side}.json`)).finished) {
      if (f.closeReason && f.closeReason !== 'ok') out.push(`relay ${side} session ${f.destination ?? f.target}: ${f.state} ${f.closeReason}`);
    }
  }
  return out.join('\n');
}

export interface GuestVmOptions {
  workload: WorkloadSpec;
  memoryMiB?: number;
  /** Number of disks (raw files of diskMiB each, migrated with the memory). Default 1. */
  disks?: number;
}

/** A VirtualMachine whose guest (kernel boot) runs `workload`, with a DataVolume disk. */
export async function createGuestVM(c: KubeClient, ns: string, name: string, o: GuestVmOptions): Promise<void> {
  await ensure(c, Res.namespace, { metadata: { name: ns } });
  const disks = o.disks ?? 1;
  for (let i = 0; i < disks; i++) {
    await ensure(c, Res.dataVolume, {
      metadata: { name: `${name}-disk${i}`, namespace: ns },
      spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } }, storageClassName: 'local-path', accessModes: ['ReadWriteOnce'] } },
    });
  }
  const vm = vmObject(ns, name, {
    memory: `${o.memoryMiB ?? 256}Mi`, kernelArgs: kernelCmdline(o.workload),
    disks: Array.from({ length: disks }, (_, i) => ({ name: `disk${i}`, dataVolume: `${name}-disk${i}` })),
  });
  await c.create(Res.vm, vm);
}

export { memoryMiB };
