// One WireGuard interface, reconciled towards a desired config like a controller: read the device
// (`wg show <if> dump`, `ip -j addr/route`), diff, and apply only the difference, so calling
// `applyConfig` every probe tick is cheap and a hand-made change is reverted.
//
// Data plane: kernel WireGuard when `ip link add … type wireguard` works, else a `wireguard-go -f`
// child (userspace on TUN; the only option on our machines). Both are configured with `wg`, which
// speaks netlink to the kernel and the UAPI socket /var/run/wireguard/<if>.sock to wireguard-go;
// that directory is shared by all network namespaces, hence interface names must be unique per host.
//
// Private keys never appear in argv (visible in /proc/*/cmdline). `wg` only reads them from a
// path, and /dev/stdin is not openable when stdin is Node's socketpair, so the key goes through a
// 0600 file in a fresh 0700 directory on tmpfs (/run), removed as soon as `wg` returns.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../util/log.ts';
import { isDefaultRoute, normalizeCidr, overlaps, parseCidr } from './cidr.ts';
import { CommandError, run } from './exec.ts';
import { isWgKey, type WgPrivateKey } from './keys.ts';

export interface WgPeerConfig {
  publicKey: string;
  /** "host:port" of the peer gateway's public UDP endpoint. */
  endpoint?: string;
  /** Inner source/destination prefixes this peer may use; empty for a staged (rotation) peer. */
  allowedIPs: string[];
  persistentKeepaliveSec?: number;
}

export interface WgInterfaceConfig {
  name: string;
  privateKey: WgPrivateKey;
  listenPort: number;
  /** Local tunnel addresses with their prefix, e.g. "198.18.0.1/31". */
  addresses: string[];
  peers: WgPeerConfig[];
  /** Prefixes routed into the tunnel: the peer site's migration networks, sync and relay addresses. */
  routes: string[];
}

export interface WgPeerState {
  publicKey: string;
  endpoint?: string;
  allowedIPs: string[];
  /** Unix seconds of the last completed handshake; 0 = never. */
  latestHandshakeSec: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepaliveSec?: number;
}

export interface WgDeviceState {
  /** Public key of the interface's private key (the private key itself is dropped while parsing). */
  publicKey?: string;
  listenPort: number;
  peers: WgPeerState[];
}

export interface ValidateOptions {
  /** A peer may route everything only when the Site explicitly says so. */
  allowDefaultRoute?: boolean;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const ENDPOINT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Problems that make a config unsafe or unappliable; reported as LinkReady=False/ConfigInvalid. */
export function validateConfig(cfg: WgInterfaceConfig, opts: ValidateOptions = {}): string[] {
  const errs: string[] = [];
  if (!IFNAME.test(cfg.name)) errs.push(`interface name ${JSON.stringify(cfg.name)} is not a valid Linux interface name (max 15 chars)`);
  if (!Number.isInteger(cfg.listenPort) || cfg.listenPort < 1 || cfg.listenPort > 65535) errs.push(`listen port ${cfg.listenPort} out of range`);
  const checkCidrs = (what: string, list: readonly string[]): void => {
    for (const c of list) {
      try { parseCidr(c); } catch { errs.push(`${what}: ${JSON.stringify(c)} is not a CIDR`); continue; }
      if (isDefaultRoute(c) && !opts.allowDefaultRoute) errs.push(`${what}: ${c} would send all traffic to the peer; set allowDefaultRoute to permit it`);
    }
  };
  checkCidrs('addresses', cfg.addresses);
  checkCidrs('routes', cfg.routes);
  const seen = new Set<string>();
  const claimed: string[] = [];
  for (const p of cfg.peers) {
    if (!isWgKey(p.publicKey)) errs.push(`peer public key ${JSON.stringify(p.publicKey)} is not a WireGuard key`);
    if (seen.has(p.publicKey)) errs.push(`peer ${p.publicKey} listed twice`);
    seen.add(p.publicKey);
    if (p.endpoint !== undefined && !ENDPOINT.test(p.endpoint)) errs.push(`peer endpoint ${JSON.stringify(p.endpoint)} is not host:port`);
    checkCidrs(`peer allowed-ips`, p.allowedIPs);
    for (const a of p.allowedIPs) {
      try {
        if (claimed.some((c) => overlaps(c, a))) errs.push(`allowed-ip ${a} overlaps another peer's range`);
      } catch { /* reported above */ }
      claimed.push(a);
    }
  }
  if (cfg.privateKey.publicKey() && seen.has(cfg.privateKey.publicKey())) errs.push('a peer has the interface\'s own public key');
  return errs;
}

/** Parses `wg show <if> dump`. The first line carries the private key: it is discarded here. */
export function parseDump(text: string): WgDeviceState {
  const lines = text.split('\n').filter((l) => l.length);
  if (!lines.length) throw new Error('empty wg dump');
  const head = lines[0].split('\t');
  const none = (s: string | undefined): string | undefined => (s === undefined || s === '(none)' || s === 'off' ? undefined : s);
  const pub = none(head[1]);
  const state: WgDeviceState = { ...(pub ? { publicKey: pub } : {}), listenPort: Number(head[2]), peers: [] };
  for (const line of lines.slice(1)) {
    const f = line.split('\t');
    const endpoint = none(f[2]);
    const allowed = none(f[3]);
    const ka = none(f[7]);
    state.peers.push({
      publicKey: f[0],
      ...(endpoint ? { endpoint } : {}),
      allowedIPs: allowed ? allowed.split(',').map((s) => normalizeCidr(s)) : [],
      latestHandshakeSec: Number(f[4]),
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      ...(ka ? { persistentKeepaliveSec: Number(ka) } : {}),
    });
  }
  return state;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a), y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/**
 * The `wg set <if> …` argument lists that turn `actual` into `desired`, excluding the private key
 * (handled separately because it travels on stdin). Additions and updates come before removals:
 * setting a prefix on a new peer moves it off the old one atomically (WireGuard's allowed-ips are
 * one trie), so promoting a rotated peer key never leaves its ranges without a peer.
 */
export function planPeerChanges(desired: WgInterfaceConfig, actual: WgDeviceState): string[][] {
  const cmds: string[][] = [];
  if (actual.listenPort !== desired.listenPort) cmds.push(['listen-port', String(desired.listenPort)]);
  const want = new Map(desired.peers.map((p) => [p.publicKey, p]));
  for (const p of desired.peers) {
    const cur = actual.peers.find((a) => a.publicKey === p.publicKey);
    const allowed = p.allowedIPs.map(normalizeCidr);
    const args: string[] = [];
    if (p.endpoint && cur?.endpoint !== p.endpoint) args.push('endpoint', p.endpoint);
    const ka = p.persistentKeepaliveSec ?? 0;
    if ((cur?.persistentKeepaliveSec ?? 0) !== ka) args.push('persistent-keepalive', ka ? String(ka) : 'off');
    if (!cur || !sameSet(cur.allowedIPs, allowed)) args.push('allowed-ips', allowed.join(','));
    if (args.length || !cur) cmds.push(['peer', p.publicKey, ...args]);
  }
  for (const p of actual.peers) if (!want.has(p.publicKey)) cmds.push(['peer', p.publicKey, 'remove']);
  return cmds;
}

async function secretDir(): Promise<string> {
  for (const base of ['/run', tmpdir()]) {
    try { return await mkdtemp(join(base, 'cloudnet-wg-')); } catch { /* not writable: next */ }
  }
  throw new Error('no writable directory for a transient key file');
}

/** Runs `fn` with a path to a 0600 file holding `content`; the file is gone when this returns. */
export async function withSecretFile<T>(content: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await secretDir(); // mkdtemp creates it 0700
  try {
    const path = join(dir, 'key');
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function readDevice(name: string): Promise<WgDeviceState> {
  return parseDump(await run('wg', ['show', name, 'dump']));
}

async function linkExists(name: string): Promise<boolean> {
  try { await run('ip', ['link', 'show', 'dev', name]); return true; } catch { return false; }
}

/** A WireGuard interface this process created (and removes on close). */
export class WgDevice {
  readonly name: string;
  readonly mode: 'kernel' | 'userspace' | 'existing';
  readonly #child: ChildProcess | undefined;

  private constructor(name: string, mode: 'kernel' | 'userspace' | 'existing', child?: ChildProcess) {
    this.name = name;
    this.mode = mode;
    this.#child = child;
  }

  /** Creates the interface: kernel module first, wireguard-go otherwise. Reuses an existing one. */
  static async open(name: string, log: Logger): Promise<WgDevice> {
    if (await linkExists(name)) {
      log.info('reusing existing wireguard interface', { ifname: name });
      return new WgDevice(name, 'existing');
    }
    try {
      await run('ip', ['link', 'add', 'dev', name, 'type', 'wireguard']);
      log.info('created kernel wireguard interface', { ifname: name });
      return new WgDevice(name, 'kernel');
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
    }
    const child = spawn('wireguard-go', ['-f', name], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'error', WG_PROCESS_FOREGROUND: '1' },
    });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-2000); });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT'
        ? new Error('wireguard-go not found and kernel WireGuard unavailable (apt package wireguard-go)') : e));
    });
    await spawned;
    const sock = `/var/run/wireguard/${name}.sock`;
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`wireguard-go ${name} exited (${child.exitCode}): ${stderr.trim()}`);
      try { await access(sock); if (await linkExists(name)) break; } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    await access(sock);
    log.info('started userspace wireguard-go', { ifname: name, pid: child.pid });
    return new WgDevice(name, 'userspace', child);
  }

  /** Removes the interface this process created; an adopted one is left alone. */
  async close(): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    } else if (this.mode === 'kernel') {
      await run('ip', ['link', 'del', 'dev', this.name]).catch(() => undefined);
    }
  }

  /** True while the data plane is alive (the wireguard-go child has not died). */
  alive(): boolean {
    return !this.#child || (this.#child.exitCode === null && this.#child.signalCode === null);
  }
}

interface IpAddrInfo { family: string; local: string; prefixlen: number; scope?: string }
interface IpRoute { dst: string; protocol?: string }

async function ensureAddresses(name: string, want: readonly string[]): Promise<boolean> {
  const out = JSON.parse(await run('ip', ['-j', 'addr', 'show', 'dev', name])) as { addr_info?: IpAddrInfo[] }[];
  const have = (out[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
  const wantFull = want.map((a) => (a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`));
  let changed = false;
  for (const a of have) if (!wantFull.includes(a)) { await run('ip', ['addr', 'del', a, 'dev', name]); changed = true; }
  for (const a of wantFull) if (!have.includes(a)) { await run('ip', ['addr', 'add', a, 'dev', name]); changed = true; }
  return changed;
}

async function ensureRoutes(name: string, want: readonly string[]): Promise<boolean> {
  const wantNorm = want.map(normalizeCidr);
  let changed = false;
  for (const fam of ['-4', '-6']) {
    const routes = JSON.parse(await run('ip', ['-j', fam, 'route', 'show', 'dev', name])) as IpRoute[];
    for (const r of routes) {
      if (r.protocol === 'kernel') continue; // address subnets and link-local: owned by the kernel
      const dst = r.dst === 'default' ? (fam === '-4' ? '0.0.0.0/0' : '::/0') : normalizeCidr(r.dst);
      if (!wantNorm.includes(dst)) { await run('ip', [fam, 'route', 'del', dst, 'dev', name]); changed = true; }
    }
    const have = new Set(routes.map((r) => (r.dst === 'default' ? '' : normalizeCidr(r.dst))));
    for (const d of wantNorm) {
      if (have.has(d) || (fam === '-4') !== !d.includes(':')) continue;
      await run('ip', [fam, 'route', 'replace', d, 'dev', name]);
      changed = true;
    }
  }
  return changed;
}

export interface ApplyResult {
  changed: boolean;
  /** Human-readable list of what was changed (never contains key material beyond public keys). */
  changes: string[];
}

/**
 * Idempotently configures interface `cfg.name` (which must exist). Throws on invalid config; the
 * caller validates first to report ConfigInvalid instead.
 */
export interface ApplyOptions extends ValidateOptions {
  /** The device as just read (saves a `wg show`). */
  actual?: WgDeviceState;
  /**
   * Also check addresses, link state and routes (four `ip` calls). Callers that reconcile every
   * second do this less often: each process spawn briefly blocks the event loop that also times
   * the RTT probes. Default true.
   */
  checkIp?: boolean;
}

export async function applyConfig(cfg: WgInterfaceConfig, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const errs = validateConfig(cfg, opts);
  if (errs.length) throw new Error(`invalid wireguard config: ${errs.join('; ')}`);
  const changes: string[] = [];
  const actual = opts.actual ?? await readDevice(cfg.name);
  if (actual.publicKey !== cfg.privateKey.publicKey()) {
    await withSecretFile(`${cfg.privateKey.reveal()}\n`, (path) => run('wg', ['set', cfg.name, 'private-key', path]));
    changes.push(`private key (public ${cfg.privateKey.publicKey()})`);
  }
  // One `wg set` for all peer changes: a key promotion (move ranges, drop the old peer) is a
  // single configuration transaction, and one process spawn instead of several.
  const plan = planPeerChanges(cfg, actual);
  if (plan.length) {
    await run('wg', ['set', cfg.name, ...plan.flat()]);
    changes.push(...plan.map((a) => a.join(' ')));
  }
  if (opts.checkIp === false) return { changed: changes.length > 0, changes };
  if (await ensureAddresses(cfg.name, cfg.addresses)) changes.push(`addresses ${cfg.addresses.join(',')}`);
  const up = JSON.parse(await run('ip', ['-j', 'link', 'show', 'dev', cfg.name])) as { flags?: string[] }[];
  if (!up[0]?.flags?.includes('UP')) { await run('ip', ['link', 'set', 'dev', cfg.name, 'up']); changes.push('link up'); }
  // Routes that the addresses' own subnets already cover need no entry of their own.
  const routes = cfg.routes.filter((r) => !cfg.addresses.some((a) => normalizeCidr(a) === normalizeCidr(r)));
  if (await ensureRoutes(cfg.name, routes)) changes.push(`routes ${routes.join(',')}`);
  return { changed: changes.length > 0, changes };
}
