// The end-to-end bed, shared by test/e2e and `npm run demo` (hack/demo.ts): two real clusters
// (site-a runs the operator and the source VMs, site-b is the target), two sites joined by the
// emulated WAN (wanem) with WireGuard between the gateways, optionally the CloudNet relay pair
// (sender in site A's node namespace, receiver in site B's, plain TCP inside the WireGuard tunnel),
// the KubeVirt stand-in in each cluster with the real-QEMU driver, and the operator in-process.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../src/kube/client.ts';
import { Res } from '../../src/api/resources.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { MigrationSample } from '../../src/qemu/migrate.ts';
import type { WorkloadSpec } from '../../src/qemu/image.ts';
import { kernelCmdline } from '../../src/qemu/image.ts';
import type { RunningOperator } from '../../src/operator/main.ts';
import { installKubevirtCrds, startClusters } from '../env/index.ts';
import { createSites, type Sites } from '../env/wan.ts';
import { createWireGuard, type WireGuardTunnel } from '../env/wireguard.ts';
import { onExit } from '../helpers/exit.ts';
import { requireQemu } from '../env/qemu.ts';
import { CLI, NODE, waitForLog } from '../env/relay-cli.ts';
import { ensure, runOperator, setupBed, type Bed } from '../standin/harness.ts';
import { directRoute, memoryMiB, QemuDriver, relayRoute, relaySlotFlags } from '../standin/qemu-driver.ts';
import { RelayStatsProgress } from './relay-progress.ts';

export interface WanBedOptions {
  rateBps?: number;
  rttMs?: number;
  /** Memory streams through the relay pair (default true); false: straight across the WAN. */
  relay?: boolean;
  /** Concurrent migrations the relay pair is set up for (default 4). */
  slots?: number;
  relayCacheMb?: number;
  diskMiB?: number;
  onSample?: (migrationID: string, s: MigrationSample) => void;
  log?: (line: string) => void;
}

/** The stand-in bed (clusters, clients, stand-ins, hub) plus the WAN, the relays and the operator. */
export interface WanBed extends Bed {
  sites: Sites;
  wg: WireGuardTunnel;
  driver: QemuDriver;
  operator: RunningOperator;
  workDir: string;
  relayStatsFile?: string;
  relayProcs: ChildProcess[];
  /** Kills the relay pair (failure injection). */
  killRelay(): void;
  /** Relay warnings/errors and the close reasons of failed sessions, for failure messages. */
  relayDiagnostics(): string;
  /** Byte-exactness of the relay: SHA-256 of each finished session's input at the sender vs its
   *  output at the receiver (both run with --hash-streams), from their stats files. */
  relayStreamCheck(): RelayStreamCheck;
  stop(): Promise<void>;
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
      createSites({ rateBps: o.rateBps ?? 100e6, delayMs: rttMs / 2 }),
    ]);
    cleanups.push(() => Promise.all(clusters.map((c) => c.stop())).then(() => undefined));
    cleanups.push(() => sites.destroy());
    const wg = await createWireGuard(sites);
    cleanups.push(() => wg.destroy());
    log(`WireGuard up: ${wg.a.ifname} ${wg.a.tunnelIp} (${sites.a.gwNs}) <-> ${wg.b.ifname} ${wg.b.tunnelIp} (${sites.b.gwNs}); LANs routed through the tunnel`);

    const slots = o.slots ?? 4;
    const relayProcs: ChildProcess[] = [];
    let relayStatsFile: string | undefined;
    const useRelay = o.relay ?? true;
    if (useRelay) {
      // Memory and NBD disk slots (the disks take that path unless CLOUDNET_DISK_TRANSPORT=block).
      const flags = relaySlotFlags(slots, undefined, undefined, sites.b.nodeIp);
      const cache = String(o.relayCacheMb ?? 256);
      relayStatsFile = join(workDir, 'relay-send.json');
      const env = { ...process.env, LOG_LEVEL: 'info' };
      const receiver = sites.spawn(sites.b.nodeNs, NODE, [CLI, 'relay', 'receive', '--listen', `${sites.b.nodeIp}:7400`, ...flags.receive,
        '--plain-inside-wireguard', '--cache-mb', cache, '--hash-streams', '--stats-file', join(workDir, 'relay-receive.json')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      relayProcs.push(receiver);
      cleanups.push(() => { for (const p of relayProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
      await waitForLog(receiver, /relay receiver ready/, 30_000);
      const sender = sites.spawn(sites.a.nodeNs, NODE, [CLI, 'relay', 'send', ...flags.send, '--peer', `${sites.b.nodeIp}:7400`,
        '--plain-inside-wireguard', '--cache-mb', cache, '--hash-streams', '--stats-file', relayStatsFile], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      relayProcs.push(sender);
      await waitForLog(sender, /relay sender ready/, 30_000);
      // Keep their logs (a full pipe would stall them) for diagnostics.
      receiver.stderr?.pipe(createWriteStream(join(workDir, 'relay-receive.log')));
      sender.stderr?.pipe(createWriteStream(join(workDir, 'relay-send.log')));
      log(`relay pair up: sender ${sites.a.nodeIp} (127.0.0.1:49152..${49151 + 2 * slots}, memory and disks) -> receiver ${sites.b.nodeIp}:7400, plain TCP inside WireGuard`);
    }

    const driver = new QemuDriver({
      workDir,
      sites: { 'site-a': { netns: sites.a.nodeNs, nodeIp: sites.a.nodeIp }, 'site-b': { netns: sites.b.nodeNs, nodeIp: sites.b.nodeIp } },
      route: useRelay ? relayRoute(slots) : directRoute(),
      diskMiB: o.diskMiB,
      onSample: o.onSample,
      // A CPU-starved run measures a lower stream rate: allow more downtime before leaving it to QEMU.
      smartStop: { maxDowntimeMs: 10_000 },
    });
    cleanups.push(() => driver.stopAll());

    await Promise.all(clusters.map((c) => installKubevirtCrds(c)));
    const standInBed = await setupBed(clusters, {
      standIn: { driver, phaseDelayMs: 50, tickMs: 100 },
      syncAddresses: [`${sites.a.nodeIp}:9185`, `${sites.b.nodeIp}:9185`],
    });
    cleanups.push(() => standInBed.stop());

    const relayProvider = relayStatsFile ? new RelayStatsProgress({
      statsFile: relayStatsFile,
      sessionTarget: (id) => driver.migrations.get(id)?.label,
      memoryBytes: (id) => driver.migrations.get(id)?.memoryBytes ?? 0,
    }) : undefined;
    const operator = await runOperator(standInBed, relayProvider ? { relay: relayProvider } : {});
    cleanups.push(() => operator.stop());

    const bed: WanBed = {
      ...standInBed, sites, wg, driver, operator, workDir, relayStatsFile, relayProcs,
      killRelay() { for (const p of relayProcs) p.kill('SIGKILL'); },
      relayDiagnostics() { return relayDiagnostics(workDir); },
      relayStreamCheck() { return relayStreamCheck(workDir); },
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

interface StatsSession { id: number; target?: string; state?: string; closeReason?: string; inputSha256?: string; outputSha256?: string }

/** A relay's stats file (`--stats-file`): its open and its finished sessions. */
function readSessions(file: string): { sessions: StatsSession[]; finished: StatsSession[] } {
  if (!existsSync(file)) return { sessions: [], finished: [] };
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { sessions?: StatsSession[]; finished?: StatsSession[] };
    return { sessions: j.sessions ?? [], finished: j.finished ?? [] };
  } catch {
    return { sessions: [], finished: [] }; // being rewritten: the next read sees it
  }
}

const allSessions = (file: string): StatsSession[] => { const r = readSessions(file); return [...r.sessions, ...r.finished]; };

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
      if (f.closeReason && f.closeReason !== 'ok') out.push(`relay ${side} session ${f.target}: ${f.state} ${f.closeReason}`);
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
  const vm: KubeObject = {
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels: { app: name } },
        spec: {
          domain: {
            firmware: { kernelBoot: { container: { image: 'cloudnet/guest:local', kernelPath: '/vmlinuz', initrdPath: '/initrd.cpio.gz' }, kernelArgs: kernelCmdline(o.workload) } },
            devices: { disks: Array.from({ length: disks }, (_, i) => ({ name: `disk${i}`, disk: { bus: 'virtio' } })) },
            memory: { guest: `${o.memoryMiB ?? 256}Mi` },
          },
          volumes: Array.from({ length: disks }, (_, i) => ({ name: `disk${i}`, dataVolume: { name: `${name}-disk${i}` } })),
        },
      },
    },
  };
  await c.create(Res.vm, vm);
}

export { memoryMiB };
