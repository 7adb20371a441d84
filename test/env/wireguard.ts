// Test-bed WireGuard: one wireguard-go interface in each gateway namespace, peered across the
// emulated WAN (endpoints are the gateways' wan0 addresses). The kernel module is absent here, so
// this is userspace wireguard-go on TUN. Its control sockets live in the shared
// /var/run/wireguard/, hence interface names unique per run (wg<pid base36><rand><side>, ≤ 15 chars).
//
// This is plumbing for tests; the product's own link code (src/link) must not import it.
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/poll.ts';
import { onExit } from '../helpers/exit.ts';
import { listNetns, nsSpawn, requireTool, run } from './netns.ts';
import type { SiteInfo, Sites } from './wan.ts';

export const WG_SOCKET_DIR = '/var/run/wireguard';
export const WG_TUNNEL = { a: '198.18.0.1', b: '198.18.0.2', prefixLen: 24 } as const;

export interface WireGuardOptions {
  /** Route each site's networks (LAN, pods) to the other through the tunnel instead of the plain WAN (default true). */
  routeLans?: boolean;
  listenPort?: number;
  /** Tunnel MTU (default 1420, which fits a 1500-byte WAN). */
  mtu?: number;
  persistentKeepaliveS?: number;
}

export interface WireGuardEnd {
  ifname: string;
  tunnelIp: string;
  publicKey: string;
  gwNs: string;
}

export interface WireGuardTunnel {
  readonly a: WireGuardEnd;
  readonly b: WireGuardEnd;
  /** Stops both wireguard-go processes, removes their sockets and restores the LAN routes. Idempotent. */
  destroy(): Promise<void>;
}

async function genKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await run('wg', ['genkey'])).stdout.trim();
  const publicKey = (await run('wg', ['pubkey'], { input: privateKey + '\n' })).stdout.trim();
  return { privateKey, publicKey };
}

function socketPath(ifname: string): string {
  return `${WG_SOCKET_DIR}/${ifname}.sock`;
}

/**
 * Removes control sockets of test-bed interfaces (wg<pid base36><4 hex><a|b>) whose owning test
 * process is gone; a SIGKILLed run leaves them behind with its wireguard-go processes.
 */
export function sweepStaleWireGuardSockets(): string[] {
  let names: string[];
  try {
    names = readdirSync(WG_SOCKET_DIR);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const f of names) {
    const m = /^wg([0-9a-z]+)[0-9a-f]{4}[ab]\.sock$/.exec(f);
    if (!m) continue;
    const pid = parseInt(m[1], 36);
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') {
        rmSync(`${WG_SOCKET_DIR}/${f}`, { force: true });
        swept.push(f);
      }
    }
  }
  return swept;
}

/** Brings up a WireGuard tunnel between the two gateways of `sites`. */
export async function createWireGuard(sites: Sites, opts: WireGuardOptions = {}): Promise<WireGuardTunnel> {
  requireTool('wireguard-go', 'wireguard-go');
  requireTool('wg', 'wireguard-tools');
  sweepStaleWireGuardSockets();
  const routeLans = opts.routeLans ?? true;
  const port = opts.listenPort ?? 51820;
  const [pid, rand] = sites.runId.split('-');
  const base = `wg${Number(pid).toString(36)}${rand}`;
  const procs: ChildProcess[] = [];
  const ifnames = [`${base}a`, `${base}b`];
  let destroyed = false;

  const stopSync = (): void => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const n of ifnames) rmSync(socketPath(n), { force: true });
  };
  const unregister = onExit(stopSync);

  const ends: Array<{ site: SiteInfo; ifname: string; tunnelIp: string; keys: { privateKey: string; publicKey: string } }> = [
    { site: sites.a, ifname: ifnames[0], tunnelIp: WG_TUNNEL.a, keys: await genKeyPair() },
    { site: sites.b, ifname: ifnames[1], tunnelIp: WG_TUNNEL.b, keys: await genKeyPair() },
  ];

  const restoreRoutes = async (): Promise<void> => {
    if (!routeLans) return;
    for (const [me, peer] of [
      [ends[0], ends[1]],
      [ends[1], ends[0]],
    ]) {
      if (listNetns().includes(me.site.gwNs)) {
        for (const net of peer.site.networks) await run('ip', ['-n', me.site.gwNs, 'route', 'replace', net, 'dev', me.site.wanDev], { allowFail: true });
      }
    }
  };

  try {
    for (const end of ends) {
      if (existsSync(socketPath(end.ifname))) throw new Error(`WireGuard socket ${socketPath(end.ifname)} already exists`);
      const child = nsSpawn(end.site.gwNs, 'wireguard-go', ['-f', end.ifname], { stdio: ['ignore', 'ignore', 'pipe'] });
      procs.push(child);
      let err = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
      await waitFor(() => {
        if (child.exitCode !== null) throw new Error(`wireguard-go ${end.ifname} exited (${child.exitCode}): ${err.trim()}`);
        return existsSync(socketPath(end.ifname));
      }, { what: `wireguard-go ${end.ifname} control socket`, timeoutMs: 10_000, intervalMs: 20, retryErrors: false });
    }
    for (const [me, peer] of [
      [ends[0], ends[1]],
      [ends[1], ends[0]],
    ]) {
      const ns = me.site.gwNs;
      const allowed = [`${peer.tunnelIp}/32`, ...(routeLans ? peer.site.networks : [])].join(',');
      const peerArgs = ['peer', peer.keys.publicKey, 'endpoint', `${peer.site.gwWanIp}:${port}`, 'allowed-ips', allowed];
      if (opts.persistentKeepaliveS) peerArgs.push('persistent-keepalive', String(opts.persistentKeepaliveS));
      // The private key goes through a 0600 file in a private dir, never argv; wg cannot read
      // it from /dev/stdin because Node's stdio pipes are sockets.
      const keyDir = mkdtempSync(join(tmpdir(), 'cnw-wgkey-'));
      try {
        const keyFile = join(keyDir, 'private.key');
        writeFileSync(keyFile, me.keys.privateKey + '\n', { mode: 0o600 });
        await run('ip', ['netns', 'exec', ns, 'wg', 'set', me.ifname, 'listen-port', String(port), 'private-key', keyFile, ...peerArgs]);
      } finally {
        rmSync(keyDir, { recursive: true, force: true });
      }
      await run('ip', ['-n', ns, 'addr', 'add', `${me.tunnelIp}/${WG_TUNNEL.prefixLen}`, 'dev', me.ifname]);
      await run('ip', ['-n', ns, 'link', 'set', me.ifname, 'mtu', String(opts.mtu ?? 1420), 'up']);
      if (routeLans) for (const net of peer.site.networks) await run('ip', ['-n', ns, 'route', 'replace', net, 'dev', me.ifname]);
    }
  } catch (err) {
    stopSync();
    unregister();
    await restoreRoutes();
    throw err;
  }

  const view = (e: (typeof ends)[number]): WireGuardEnd => ({
    ifname: e.ifname,
    tunnelIp: e.tunnelIp,
    publicKey: e.keys.publicKey,
    gwNs: e.site.gwNs,
  });
  return {
    a: view(ends[0]),
    b: view(ends[1]),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      const exits = procs.map((p) =>
        p.exitCode === null && p.signalCode === null ? new Promise<void>((r) => p.once('exit', () => r())) : Promise.resolve(),
      );
      for (const p of procs) p.kill('SIGTERM'); // a no-op for a child already reaped
      const timer = setTimeout(stopSync, 3000);
      await Promise.all(exits);
      clearTimeout(timer);
      stopSync();
      unregister();
      await restoreRoutes();
    },
  };
}
