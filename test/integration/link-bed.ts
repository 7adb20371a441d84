// Test bed for the link suites: the two-site WAN from test/env/wan.ts plus one `cloudnet gateway`
// agent per gateway namespace, exchanging their public keys through state files (the file form
// of the peer-cluster exchange). Everything is torn down in stop(), including on test failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PublishedGatewayState } from '../../src/link/exchange.ts';
import type { LinkEvent } from '../../src/link/events.ts';
import { requireTool } from '../env/netns.ts';
import { createSites, type Sites, type SitesOptions } from '../env/wan.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(repoRoot, 'src/cli.ts');

export const TUNNEL = { a: '198.18.10.1/24', b: '198.18.10.2/24' } as const;
export const WG_PORT = 51820;

export interface GatewayProc {
  side: 'a' | 'b';
  ifname: string;
  stateFile: string;
  eventsFile: string;
  proc: ChildProcess;
  stderr(): string;
  state(): PublishedGatewayState | undefined;
  events(): LinkEvent[];
}

export interface LinkBed {
  sites: Sites;
  dir: string;
  a: GatewayProc;
  b: GatewayProc;
  /** Restarts one side with extra flags (e.g. a wrong --peer-public-key). */
  restart(side: 'a' | 'b', extra: string[]): Promise<void>;
  stop(): Promise<void>;
}

export interface LinkBedOptions {
  wan?: SitesOptions;
  extraA?: string[];
  extraB?: string[];
  /** Loopback ports (API servers) to make reachable from inside the gateway namespaces. */
  bridgePorts?: number[];
  /** Run the gateways in cluster mode (--kube) with these kubeconfigs instead of state files. */
  kubeconfigs?: { a: string; b: string };
}

function readJson<T>(path: string): T | undefined {
  try { return JSON.parse(readFileSync(path, 'utf8')) as T; } catch { return undefined; }
}

export async function createLinkBed(opts: LinkBedOptions = {}): Promise<LinkBed> {
  requireTool('wireguard-go', 'wireguard-go');
  requireTool('wg', 'wireguard-tools');
  const sites = await createSites(opts.wan ?? {});
  const dir = mkdtempSync(join(tmpdir(), 'cn-link-'));
  const cleanups: (() => Promise<void>)[] = [];
  try {
    for (const side of ['a', 'b'] as const) {
      for (const port of opts.bridgePorts ?? []) cleanups.push(await bridgeLoopbackPort(sites[side].gwNs, port, dir));
    }
  } catch (e) {
    for (const c of cleanups) await c().catch(() => undefined);
    await sites.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const tag = sites.runId.replace('-', '').slice(-8);
  const gateways: Partial<Record<'a' | 'b', GatewayProc>> = {};

  const start = (side: 'a' | 'b', extra: string[]): GatewayProc => {
    const other = side === 'a' ? 'b' : 'a';
    const me = sites[side], peer = sites[other];
    const ifname = `cn${tag}${side}`;
    const stateFile = join(dir, `${side}.state.json`);
    const eventsFile = join(dir, `${side}.events.jsonl`);
    const common = [
      cli, 'gateway', '--site', `site-${side}`, '--interface', ifname, '--listen-port', String(WG_PORT),
      '--tunnel-address', TUNNEL[side], '--endpoint', `${me.gwWanIp}:${WG_PORT}`, '--network', me.lanCidr,
      '--peer-site', `site-${other}`, '--events-file', eventsFile, '--bandwidth-interval-ms', '5000',
    ];
    const kubeconfig = opts.kubeconfigs?.[side];
    const args = kubeconfig ? [...common, '--kube', '--namespace', 'cloudnet-system', ...extra] : [
      ...common, '--peer-endpoint', `${peer.gwWanIp}:${WG_PORT}`,
      '--peer-tunnel-address', TUNNEL[other], '--peer-network', peer.lanCidr,
      '--key-file', join(dir, `${side}.key.json`), '--state-file', stateFile,
      '--peer-state-file', join(dir, `${other}.state.json`), ...extra,
    ];
    const proc = spawn('ip', ['netns', 'exec', me.gwNs, process.execPath, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info', ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}) },
    });
    let err = '';
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-20_000); });
    return {
      side, ifname, stateFile, eventsFile, proc,
      stderr: () => err,
      state: () => readJson<PublishedGatewayState>(stateFile),
      events: () => (existsSync(eventsFile) ? readFileSync(eventsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LinkEvent) : []),
    };
  };

  const stopOne = async (g: GatewayProc | undefined): Promise<void> => {
    if (!g) return;
    const p = g.proc;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    // A SIGKILLed wireguard-go leaves its control socket behind; it is ours, by its unique name.
    rmSync(`/var/run/wireguard/${g.ifname}.sock`, { force: true });
  };

  gateways.a = start('a', opts.extraA ?? []);
  gateways.b = start('b', opts.extraB ?? []);
  return {
    sites, dir,
    get a() { return gateways.a as GatewayProc; },
    get b() { return gateways.b as GatewayProc; },
    async restart(side, extra) {
      await stopOne(gateways[side]);
      gateways[side] = start(side, extra);
    },
    async stop() {
      await Promise.all([stopOne(gateways.a), stopOne(gateways.b)]);
      for (const c of cleanups) await c().catch(() => undefined);
      await sites.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function diagnostics(bed: LinkBed): string {
  return ['a', 'b'].map((s) => {
    const g = s === 'a' ? bed.a : bed.b;
    return `--- gateway ${s} state: ${JSON.stringify(g.state()?.link)}\n--- stderr tail:\n${g.stderr().slice(-3000)}`;
  }).join('\n');
}

/**
 * Makes a loopback API server (https://127.0.0.1:<port>) reachable from inside a network
 * namespace at the same address, so kubeconfigs work unchanged: a forwarder in the namespace
 * listens on 127.0.0.1:<port> and relays over a Unix socket (the filesystem crosses namespaces)
 * to this process, which connects to the real port. In a real cluster the gateway runs with
 * hostNetwork and needs none of this.
 */
export async function bridgeLoopbackPort(ns: string, port: number, dir: string): Promise<() => Promise<void>> {
  const { createServer, connect } = await import('node:net');
  const sockPath = join(dir, `api-${ns}-${port}.sock`);
  const server = createServer((c) => {
    const up = connect(port, '127.0.0.1');
    c.pipe(up); up.pipe(c);
    c.on('error', () => up.destroy()); up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(sockPath, () => r()));
  const script = `const net=require('node:net');net.createServer((c)=>{const u=net.connect(${JSON.stringify(sockPath)});`
    + `c.pipe(u);u.pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());})`
    + `.listen(${port},'127.0.0.1',()=>console.log('ready'));`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error('API bridge did not start')), 10_000);
    child.stdout?.once('data', () => { clearTimeout(t); res(); });
    child.once('exit', (code) => { clearTimeout(t); rej(new Error(`API bridge exited ${code}`)); });
  });
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(sockPath, { force: true });
  };
}
