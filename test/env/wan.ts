// Two sites joined by an emulated WAN, built from network namespaces:
//
//   site A                                                       site B
//   [node A] --veth lan0-- [gw A] ==wan0== wanem ==wan0== [gw B] --veth lan0-- [node B]
//   192.0.2.2          192.0.2.1  203.0.113.1     203.0.113.2  198.51.100.1      198.51.100.2
//
// VMs (QEMU) run in the node namespaces; the gateways route between the LAN and the WAN. With
// `workers: n` a site has n worker nodes (192.0.2.2, .3, ...), each on the gateway's LAN bridge
// (lan0 in the gateway namespace: the gateway node itself). With `podNetworks`, each node has a pod
// subnet of the site's pod network (a `pods0` device holding the pod address .10) and the bed
// plays the CNI: every node routes the other nodes' pod subnets via their LAN addresses. With
// `nodeRoutes: 'agent'` the workers get no default route: only what a route agent adds (the
// peer sites' networks via the gateway node) reaches beyond the site. wanem
// (test/wanem, built by hack/build-wanem.sh) creates wan0 directly inside each gateway namespace
// and shapes traffic per direction: "ab" is A→B, "ba" is B→A. Addresses come only from the
// documentation ranges, and each test gets its own namespaces, so they can repeat across tests.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addNetns,
  deleteNetnsSync,
  killQuietly,
  netnsName,
  newRunId,
  nsExec,
  nsSpawn,
  requireRoot,
  requireTool,
  run,
  sweepStaleNetns,
  type ExecResult,
  type RunOptions,
} from './netns.ts';
import { onExit } from '../helpers/exit.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Parameters of one direction; omitted fields are "off" at creation and unchanged in setLink. */
export interface LinkParams {
  /** Serialization rate of IP packets in bit/s; 0 = unlimited. */
  rateBps?: number;
  /** One-way propagation delay. */
  delayMs?: number;
  /** Uniform ±jitter on the delay; packets stay in order unless reorder is set. */
  jitterMs?: number;
  /** Per-packet drop probability, 0..1. */
  loss?: number;
  /** Drop-tail limit of the bottleneck queue in bytes. Default with a rate: one RTT's worth, at least 64 KiB. */
  queueBytes?: number;
  queuePackets?: number;
  reorder?: boolean;
  /** Cut the link: everything is dropped, including packets already on the wire. */
  down?: boolean;
  /**
   * Let 64 KiB segmentation-offload super-packets through under a rate limit (serialized as one
   * unit). Off by default; only worth it near 1 Gbit/s, where per-packet work limits first.
   */
  gso?: boolean;
}

export interface SitesOptions extends LinkParams {
  /** Worker nodes per site (default 1: node A / node B). */
  workers?: number;
  /** 'gateway' (default): workers route everything via the gateway; 'agent': no default route. */
  nodeRoutes?: 'gateway' | 'agent';
  /** A pod subnet per node (the gateway node's too), routed within the site (default false). */
  podNetworks?: boolean;
  /** Overrides for the A→B direction only. */
  ab?: LinkParams;
  /** Overrides for the B→A direction only. */
  ba?: LinkParams;
  /** MTU of the WAN devices (default 1500). */
  wanMtu?: number;
  /** Nice value of the emulator process (default -10: the wire should not starve). */
  wanemNice?: number;
  /**
   * Minimum spacing of wanem's delivery wake-ups in ms. Timer wake-ups are expensive in this VM:
   * at 100 Mbit/s, 0.25 ms cut wanem's CPU from ~30% to ~20% of a core, 0.5 ms to ~13%, for at
   * most that much extra one-way delay. Default 0.2 ms (≤ 0.4 ms on a 50 ms RTT); 0 = every
   * packet exactly on time.
   */
  wanemQuantumMs?: number;
}

/** A node of a site: its namespace, LAN address and (with podNetworks) pod subnet and pod address. */
export interface NodeInfo {
  name: string;
  ns: string;
  ip: string;
  podCidr?: string;
  podIp?: string;
}

export interface SiteInfo {
  /** The first worker node (where tests run VMs). */
  nodeNs: string;
  gwNs: string;
  lanCidr: string;
  nodeIp: string;
  /** Worker nodes, the first being nodeNs/nodeIp. */
  nodes: NodeInfo[];
  /** The gateway node (the gateway namespace) as a node: its LAN address and pod subnet. */
  gatewayNode: NodeInfo;
  /** The site's pod network, when podNetworks. */
  podCidr?: string;
  /** What the site exposes to its peer: the LAN, plus the pod network when there is one. */
  networks: string[];
  gwLanIp: string;
  gwWanIp: string;
  lanDev: string;
  wanDev: string;
}

export interface WanDirectionStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  dropDown: number;
  dropLoss: number;
  dropQueue: number;
  dropMemory: number;
  reordered: number;
  writeErrors: number;
}

export type Direction = 'ab' | 'ba' | 'both';

export interface Sites {
  readonly runId: string;
  readonly a: SiteInfo;
  readonly b: SiteInfo;
  readonly wanemPid: number;
  readonly controlSocket: string;
  /** All namespaces of this topology. */
  readonly namespaces: readonly string[];
  exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<ExecResult>;
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Changes link parameters at runtime, e.g. setLink({ down: true }) to cut and { down: false } to restore. */
  setLink(params: LinkParams, dir?: Direction): Promise<void>;
  stats(): Promise<{ ab: WanDirectionStats; ba: WanDirectionStats }>;
  /** CPU seconds (user + system) wanem has used so far, for reporting its cost next to throughput. */
  wanemCpuSeconds(): number;
  /** Removes namespaces (killing what runs in them) and stops wanem. Idempotent. */
  destroy(): Promise<void>;
}

export const DEFAULT_QUANTUM_MS = 0.2;

export const SITE_A = { lanCidr: '192.0.2.0/24', gwLanIp: '192.0.2.1', nodeIp: '192.0.2.2', gwWanIp: '203.0.113.1', podCidr: '198.18.32.0/20' } as const;
export const SITE_B = { lanCidr: '198.51.100.0/24', gwLanIp: '198.51.100.1', nodeIp: '198.51.100.2', gwWanIp: '203.0.113.2', podCidr: '198.18.48.0/20' } as const;

/** Node k's (1 = the gateway node) LAN address, pod subnet and pod address in a site. */
export function siteNode(site: typeof SITE_A | typeof SITE_B, k: number, ns: string): NodeInfo {
  const lan = site.gwLanIp.replace(/\.1$/, `.${k}`);
  const [o1, o2, o3] = site.podCidr.split('/')[0].split('.').map(Number);
  const pod = `${o1}.${o2}.${o3 + k}`;
  return { name: `node-${k}`, ns, ip: lan, podCidr: `${pod}.0/24`, podIp: `${pod}.10` };
}

function withPods(n: NodeInfo, pods: boolean): NodeInfo {
  if (pods) return n;
  const { podCidr: _c, podIp: _p, ...rest } = n;
  return rest;
}

/**
 * What a CNI (host-gw style) does inside a site: each node's pod subnet is on its own `pods0`
 * device (the pod address .10 stands for a pod there), and every node, the gateway node included,
 * routes each other node's pod subnet via that node's LAN address.
 */
async function cniRoutes(site: SiteInfo): Promise<void> {
  const all = [site.gatewayNode, ...site.nodes];
  for (const n of all) {
    await run('ip', ['-n', n.ns, 'link', 'add', 'pods0', 'type', 'bridge']); // no dummy module in this kernel
    await run('ip', ['-n', n.ns, 'addr', 'add', `${n.podIp}/24`, 'dev', 'pods0']);
    await run('ip', ['-n', n.ns, 'link', 'set', 'pods0', 'up']);
    for (const o of all) if (o !== n) await run('ip', ['-n', n.ns, 'route', 'add', o.podCidr!, 'via', o.ip]);
  }
}

let checkedWanem: string | undefined;

/**
 * Path of the wanem binary. The first call per process runs hack/build-wanem.sh against the same
 * cache, which returns at once when the source hash matches and rebuilds a stale or missing binary.
 */
export function wanemBinary(): string {
  if (checkedWanem) return checkedWanem;
  const cache = process.env.CLOUDNET_CACHE ?? join(repoRoot, '.cache');
  const bin = join(cache, 'bin', 'wanem');
  try {
    execFileSync('bash', [join(repoRoot, 'hack/build-wanem.sh')], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CLOUDNET_CACHE: cache },
    });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`building wanem (hack/build-wanem.sh, needs Go) failed: ${stderr || String(err)}`);
  }
  if (!existsSync(bin)) throw new Error(`wanem not found at ${bin} after hack/build-wanem.sh`);
  checkedWanem = bin;
  return bin;
}

/** Renders params in wanem's key=value syntax; only the fields present are emitted. */
export function linkSpec(p: LinkParams): string[] {
  const out: string[] = [];
  if (p.rateBps !== undefined) out.push(`rate=${Math.round(p.rateBps)}`);
  if (p.delayMs !== undefined) out.push(`delay=${p.delayMs}ms`);
  if (p.jitterMs !== undefined) out.push(`jitter=${p.jitterMs}ms`);
  if (p.loss !== undefined) out.push(`loss=${p.loss}`);
  if (p.queueBytes !== undefined) out.push(`queue_bytes=${Math.round(p.queueBytes)}`);
  if (p.queuePackets !== undefined) out.push(`queue_packets=${Math.round(p.queuePackets)}`);
  if (p.reorder !== undefined) out.push(`reorder=${p.reorder ? 1 : 0}`);
  if (p.down !== undefined) out.push(`down=${p.down ? 1 : 0}`);
  if (p.gso !== undefined) out.push(`gso=${p.gso ? 1 : 0}`);
  return out;
}

/** One RTT's worth of bytes at the rate (a classic BDP-sized buffer), at least 64 KiB. */
function defaultQueueBytes(rateBps: number, rttMs: number): number {
  return Math.max(64 * 1024, Math.round((rateBps / 8) * (rttMs / 1000)));
}

function directionParams(opts: SitesOptions, own: LinkParams | undefined, other: LinkParams | undefined): LinkParams {
  const { ab: _ab, ba: _ba, wanMtu: _mtu, wanemNice: _nice, wanemQuantumMs: _q, ...base } = opts;
  const p: LinkParams = { ...base, ...own };
  if (p.rateBps && p.queueBytes === undefined && p.queuePackets === undefined) {
    const rtt = (p.delayMs ?? 0) + ({ ...base, ...other }.delayMs ?? 0);
    p.queueBytes = defaultQueueBytes(p.rateBps, rtt);
  }
  return p;
}

/** utime + stime of a live process from /proc, in seconds (clock ticks are 100 Hz on Linux). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface PingResult {
  samplesMs: number[];
  medianMs: number;
  minMs: number;
  lost: number;
}

/**
 * ICMP echo RTTs from namespace ns to host. ping takes receive times from kernel timestamps, so a
 * busy machine delaying the ping process barely moves them, unlike a userspace connect timer.
 */
export async function pingRtt(ns: string, host: string, count = 10, intervalS = 0.1): Promise<PingResult> {
  requireTool('ping', 'iputils-ping');
  const r = await nsExec(ns, 'ping', ['-n', '-c', String(count), '-i', String(intervalS), '-W', '2', host], { allowFail: true });
  const samplesMs = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (samplesMs.length === 0) throw new Error(`ping ${host} from ${ns}: no replies\n${r.stdout}${r.stderr}`);
  const sorted = [...samplesMs].sort((x, y) => x - y);
  const mid = sorted.length / 2;
  return {
    samplesMs,
    medianMs: sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2,
    minMs: sorted[0],
    lost: count - samplesMs.length,
  };
}

/** Sends one command line to wanem's control socket and returns its reply line. */
export function wanemControl(socketPath: string, line: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolveReply, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`wanem control: no reply to '${line}' within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(line + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        const reply = buf.slice(0, nl);
        if (reply.startsWith('error')) reject(new Error(`wanem control '${line}': ${reply}`));
        else resolveReply(reply);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function startWanem(bin: string, args: string[]): Promise<ChildProcess> {
  return new Promise((resolveChild, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`wanem did not report ready within 10 s: ${err}`)), 10_000);
    const onError = (e: Error): void => fail(e);
    const onExit = (code: number | null): void => fail(new Error(`wanem exited (${code}) before ready: ${err.trim()}`));
    function fail(e: Error): void {
      clearTimeout(timer);
      // Only while the child is unreaped: a reaped pid may already belong to someone else.
      if (child.exitCode === null && child.signalCode === null) killQuietly(child.pid ?? -1, 'SIGKILL');
      reject(e);
    }
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('"ready":true')) {
        clearTimeout(timer);
        child.off('error', onError);
        child.off('exit', onExit);
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume();
        resolveChild(child);
      }
    });
    child.on('error', onError);
    child.on('exit', onExit);
  });
}

const CTL_DIR_PREFIX = 'cnw-wan-';

/** Removes wanem control dirs (`cnw-wan-<pid>-…` in the temp dir) whose owning process is gone. */
export function sweepStaleControlDirs(): string[] {
  const swept: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const m = /^cnw-wan-(\d+)-/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
      swept.push(name);
    }
  }
  return swept;
}

/** Creates the two-site topology with the emulated WAN between the gateways. */
export async function createSites(opts: SitesOptions = {}): Promise<Sites> {
  requireRoot();
  requireTool('ip', 'iproute2');
  requireTool('sysctl', 'procps');
  const bin = wanemBinary();
  sweepStaleNetns();
  sweepStaleControlDirs();

  const runId = newRunId();
  const workers = Math.max(1, opts.workers ?? 1);
  const names = {
    nodeA: netnsName(runId, 'na'),
    gwA: netnsName(runId, 'ga'),
    gwB: netnsName(runId, 'gb'),
    nodeB: netnsName(runId, 'nb'),
  };
  // Workers 2.. of each site: na2, nb2, ... (the first keeps the name na / nb).
  const extra = (side: 'a' | 'b') => Array.from({ length: workers - 1 }, (_, i) => netnsName(runId, `n${side}${i + 2}`));
  const extraA = extra('a');
  const extraB = extra('b');
  const namespaces = [names.nodeA, ...extraA, names.gwA, names.gwB, names.nodeB, ...extraB];
  const ctlDir = mkdtempSync(join(tmpdir(), `${CTL_DIR_PREFIX}${runId}-`));
  const controlSocket = join(ctlDir, 'wanem.sock');
  let wanem: ChildProcess | undefined;
  let destroyed = false;

  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    if (wanem?.pid !== undefined && wanem.exitCode === null && wanem.signalCode === null) killQuietly(wanem.pid, 'SIGKILL');
    for (const ns of namespaces) deleteNetnsSync(ns);
    rmSync(ctlDir, { recursive: true, force: true });
  };
  const unregister = onExit(destroySync);

  const pods = opts.podNetworks ?? false;
  const makeSite = (def: typeof SITE_A | typeof SITE_B, gwNs: string, nodeNs: string[]): SiteInfo => {
    const nodes = nodeNs.map((ns, i) => withPods(siteNode(def, i + 2, ns), pods));
    const { podCidr, ...rest } = def;
    return {
      nodeNs: nodes[0].ns, gwNs, ...rest, lanDev: 'lan0', wanDev: 'wan0', nodes, gatewayNode: withPods(siteNode(def, 1, gwNs), pods),
      ...(pods ? { podCidr, networks: [def.lanCidr, podCidr] } : { networks: [def.lanCidr] }),
    };
  };
  const a = makeSite(SITE_A, names.gwA, [names.nodeA, ...extraA]);
  const b = makeSite(SITE_B, names.gwB, [names.nodeB, ...extraB]);
  try {
    await Promise.all(namespaces.map((ns) => addNetns(ns)));
    for (const site of [a, b]) {
      // The gateway node's LAN: one worker on a plain veth (the historic layout), several on a bridge.
      const bridged = site.nodes.length > 1;
      if (bridged) {
        await run('ip', ['-n', site.gwNs, 'link', 'add', 'lan0', 'type', 'bridge']);
        await run('ip', ['-n', site.gwNs, 'link', 'set', 'lan0', 'up']);
      }
      for (const [i, node] of site.nodes.entries()) {
        // veth created directly with each end in its namespace, so the same name never clashes.
        const gwEnd = bridged ? `n${i + 2}` : 'lan0';
        await run('ip', ['link', 'add', 'lan0', 'netns', node.ns, 'type', 'veth', 'peer', 'name', gwEnd, 'netns', site.gwNs]);
        await run('ip', ['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'lan0']);
        await run('ip', ['-n', node.ns, 'link', 'set', 'lan0', 'up']);
        await run('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
        if ((opts.nodeRoutes ?? 'gateway') === 'gateway') await run('ip', ['-n', node.ns, 'route', 'add', 'default', 'via', site.gwLanIp]);
        if (bridged) await run('ip', ['-n', site.gwNs, 'link', 'set', gwEnd, 'master', 'lan0', 'up']);
      }
      await run('ip', ['-n', site.gwNs, 'addr', 'add', `${site.gwLanIp}/24`, 'dev', 'lan0']);
      await run('ip', ['-n', site.gwNs, 'link', 'set', 'lan0', 'up']);
      if (pods) await cniRoutes(site);
      // No IPv6 on the WAN devices created later: link-local chatter would blur the counters.
      await nsExec(site.gwNs, 'sysctl', [
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
        'net.ipv6.conf.default.disable_ipv6=1',
      ]);
    }

    const pab = directionParams(opts, opts.ab, opts.ba);
    const pba = directionParams(opts, opts.ba, opts.ab);
    // The emulator is the wire: run it above normal priority so CPU-hungry TCG guests on the
    // same two cores do not stretch its delays. `nice` execs wanem, so the pid is wanem's.
    wanem = await startWanem('nice', [
      '-n',
      String(opts.wanemNice ?? -10),
      bin,
      '-a-netns', names.gwA, '-a-dev', 'wan0',
      '-b-netns', names.gwB, '-b-dev', 'wan0',
      '-ctl', controlSocket,
      '-quantum', `${opts.wanemQuantumMs ?? DEFAULT_QUANTUM_MS}ms`,
      '-ab', linkSpec(pab).join(' '),
      '-ba', linkSpec(pba).join(' '),
    ]);
    for (const [site, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      await run('ip', ['-n', site.gwNs, 'addr', 'add', site.gwWanIp, 'peer', `${peer.gwWanIp}/32`, 'dev', 'wan0']);
      await run('ip', ['-n', site.gwNs, 'link', 'set', 'wan0', 'mtu', String(opts.wanMtu ?? 1500), 'up']);
      for (const net of peer.networks) await run('ip', ['-n', site.gwNs, 'route', 'add', net, 'dev', 'wan0']);
    }
  } catch (err) {
    destroySync();
    unregister();
    throw err;
  }

  const wanemProc = wanem;
  return {
    runId,
    a,
    b,
    wanemPid: wanemProc.pid ?? -1,
    controlSocket,
    namespaces,
    exec: (ns, cmd, args, o) => nsExec(ns, cmd, args, o),
    spawn: (ns, cmd, args, o) => nsSpawn(ns, cmd, args, o),
    async setLink(params, dir = 'both') {
      const spec = linkSpec(params);
      if (spec.length === 0) return;
      await wanemControl(controlSocket, ['set', `dir=${dir}`, ...spec].join(' '));
    },
    async stats() {
      return JSON.parse(await wanemControl(controlSocket, 'stats')) as { ab: WanDirectionStats; ba: WanDirectionStats };
    },
    wanemCpuSeconds() {
      return processCpuSeconds(wanemProc.pid ?? -1);
    },
    async destroy() {
      if (destroyed) return;
      if (wanemProc.exitCode === null && wanemProc.signalCode === null) {
        // SIGTERM first so wanem removes its socket (and flushes a profile, if one was asked for).
        const exited = new Promise<void>((r) => wanemProc.once('exit', () => r()));
        killQuietly(wanemProc.pid ?? -1, 'SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
        destroySync();
        await exited;
      } else {
        destroySync();
      }
      unregister();
    },
  };
}
