// `cloudnet relay send|receive`: the live relay pair, serving its stats until SIGINT/SIGTERM.
// Arguments are parsed once, in ../cli.ts.
import fs from 'node:fs';
import { mibFlag, numberFlag } from '../../util/flags.ts';
import { logger } from '../../util/log.ts';
import { parseStreamMode } from '../codec/index.ts';
import { loadTls, parseHostPort } from './net-util.ts';
import type { HostPort, LinkSecurity } from './net-util.ts';
import { serveApi, type ApiListen } from './api.ts';
import type { FlowInterceptor } from './flows.ts';
import { ReceiverRelay } from './receiver.ts';
import { startSeedIntake } from './seed-intake.ts';
import { FlowRegistry } from './registry.ts';
import { SenderRelay } from './sender.ts';
import { DEFAULT_LINK_TIMEOUT_MS } from './link.ts';
import type { ListenSpec } from './sender.ts';
import { serveStats, writeStatsFile } from './stats-server.ts';
import type { StatsSource } from './stats-server.ts';

const log = logger('relay');

/** The options of `send` and `receive` (as node:util parseArgs returns them). */
export interface LiveArgs {
  listen?: string[];
  peer?: string;
  target?: string[];
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  'plain-inside-wireguard'?: boolean;
  'window-mb'?: string;
  'hash-streams-buffer-mb'?: string;
  stats?: string;
  'stats-file'?: string;
  seed?: string[];
  'seed-mb'?: string;
  'seed-listen'?: string;
  'hash-streams'?: boolean;
  api?: string;
  'api-token-file'?: string;
  'api-cert'?: string;
  'api-key'?: string;
  intercept?: string;
  'flow-listen'?: string;
  'allow-destination'?: string[];
  'bypass-above-mbit'?: string;
  'link-timeout-s'?: string;
}

/** What the relay CLI gets from the composition root (src/cli.ts): the gateway's interceptor. */
export interface RelayHooks {
  interceptor?(spec: string): Promise<FlowInterceptor>;
}

function security(v: LiveArgs): LinkSecurity {
  if (v['plain-inside-wireguard']) return { kind: 'plain-inside-wireguard' };
  const { ca, cert, key } = v;
  if (!ca || !cert || !key) throw new Error('the relay link needs --ca, --cert and --key (mutual TLS), or --plain-inside-wireguard');
  return loadTls(ca, cert, key, v.servername);
}

export function parseListenSpec(s: string): ListenSpec {
  const m = /^(.*?)(?:\/([\w.-]+))?(?:@(\w+))?$/.exec(s);
  if (!m) throw new Error(`bad --listen ${s}`);
  return { addr: parseHostPort(m[1]), target: m[2] ?? 'default', mode: parseStreamMode(m[3]) };
}

export function parseTargets(list: string[]): Record<string, HostPort> {
  const out: Record<string, HostPort> = {};
  for (const t of list) {
    const eq = t.indexOf('=');
    out[eq > 0 ? t.slice(0, eq) : 'default'] = parseHostPort(eq > 0 ? t.slice(eq + 1) : t);
  }
  return out;
}

async function serveUntilSignal(src: StatsSource, v: LiveArgs, stop: () => Promise<void>): Promise<number> {
  const server = v.stats ? await serveStats(parseHostPort(v.stats), src) : undefined;
  const stopFile = v['stats-file'] ? writeStatsFile(v['stats-file'], src) : undefined;
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  stopFile?.();
  server?.close();
  await stop();
  return 0;
}

/** `--api unix:PATH` or `--api HOST:PORT` (TLS: --api-cert/--api-key, else the link's --cert/--key). */
function apiListen(v: LiveArgs): ApiListen {
  const api = v.api!;
  if (api.startsWith('unix:')) return { kind: 'unix', path: api.slice(5) };
  const cert = v['api-cert'] ?? v.cert;
  const key = v['api-key'] ?? v.key;
  if (!cert || !key) throw new Error('--api HOST:PORT serves TLS only: give --api-cert and --api-key (or --cert and --key), or use --api unix:PATH');
  return { kind: 'tcp', addr: parseHostPort(api, '0.0.0.0'), cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
}

/**
 * Default 1500, between the links where the relay pays and those where it only costs, as measured
 * on the 2-core test machine: a 1 Gbit/s link probes at ~905 Mbit/s, and there the relay matches
 * a plain migration's time with a third of its bytes; wanem's unshaped link probes at 2.0-2.4
 * Gbit/s (lower on a loaded machine), and there even pass-through took 1.8 s against 0.1-0.2 s
 * plain. 0 turns bypassing off.
 */
function bypassAboveBps(flag: string | undefined): number {
  return numberFlag('bypass-above-mbit', flag, 1500, { min: 0, unit: 'Mbit/s' }) * 1e6;
}

/** --hash-streams-buffer-mb: memory the stream check copies into, to hash each session once it
 *  is over (stream-hash.ts); only with --hash-streams. */
function hashBufferBytes(v: LiveArgs): number {
  const bytes = mibFlag('hash-streams-buffer-mb', v['hash-streams-buffer-mb'], 0, { min: 0 });
  if (bytes > 0 && !v['hash-streams']) throw new Error('--hash-streams-buffer-mb needs --hash-streams');
  return bytes;
}

/** The live relays' numeric flags, parsed and checked once (before the codec warm-up: ../cli.ts). */
export interface LiveNumbers {
  windowBytes: number;
  /** Room for seeded content, given --seed or --seed-listen (else 0). */
  seedBytes: number;
  bypassAboveBps: number;
  /** Memory for the deferred stream check (0: hash as the bytes pass). */
  hashBufferBytes: number;
  /** --link-timeout-s: a link silent this long counts as cut (0: never). */
  linkTimeoutMs: number;
}

export function liveNumbers(v: LiveArgs): LiveNumbers {
  // --seed-mb is checked even when nothing is seeded: a mistyped value is an error either way.
  const seedBytes = mibFlag('seed-mb', v['seed-mb'], 256, { min: 1 });
  return {
    windowBytes: mibFlag('window-mb', v['window-mb'], 8, { min: 0.25 }),
    seedBytes: v.seed?.length || v['seed-listen'] ? seedBytes : 0,
    bypassAboveBps: bypassAboveBps(v['bypass-above-mbit']),
    hashBufferBytes: hashBufferBytes(v),
    linkTimeoutMs: numberFlag('link-timeout-s', v['link-timeout-s'], DEFAULT_LINK_TIMEOUT_MS / 1000, { min: 0, unit: 's' }) * 1000,
  };
}

export async function runSend(v: LiveArgs, n: LiveNumbers, cacheBytes: number, level: number | 'auto', hooks: RelayHooks = {}): Promise<number> {
  if (!v.peer || (!v.listen?.length && !v.api)) throw new Error('send needs --peer, and --listen or --api');
  if (v.intercept && !v.api) throw new Error('--intercept needs --api: flows are intercepted once the operator registers them');
  const relay = new SenderRelay({
    listen: (v.listen ?? []).map(parseListenSpec), peer: parseHostPort(v.peer), security: security(v), cacheBytes, level,
    windowBytes: n.windowBytes, hashStreams: Boolean(v['hash-streams']), hashBufferBytes: n.hashBufferBytes, bypassAboveBps: n.bypassAboveBps,
    linkTimeoutMs: n.linkTimeoutMs,
  });
  const addrs = await relay.start();
  // A long-running relay holds its link (and both caches) ready before the first migration.
  relay.keepLinkUp();
  let stopApi = async (): Promise<void> => undefined;
  if (v.api) {
    const tokenFile = v['api-token-file'];
    if (!tokenFile) throw new Error('--api needs --api-token-file (the token the operator presents)');
    let interceptor: FlowInterceptor | undefined;
    if (v.intercept) {
      if (!hooks.interceptor) throw new Error('--intercept is not available in this build');
      interceptor = await hooks.interceptor(v.intercept);
      await interceptor.apply([]); // a fresh start: no stale redirects from a previous run
    }
    const registry = new FlowRegistry({
      listenHost: v['flow-listen'] ?? '0.0.0.0', cacheMiB: Math.floor(cacheBytes / (1 << 20)), ...(interceptor ? { interceptor } : {}),
      onAccept: (s, flow) => relay.acceptFlow(s, flow),
      bypass: () => relay.bypassReason(),
    });
    const server = await serveApi({ listen: apiListen(v), token: fs.readFileSync(tokenFile, 'utf8').trim(), registry, stats: relay });
    stopApi = async () => { server.close(); await registry.close(); };
  }
  log.info('relay sender ready', { listen: addrs.map((a) => `${a.host}:${a.port}`).join(','), ...(v.api ? { api: v.api } : {}), ...(v.intercept ? { intercept: v.intercept } : {}) });
  return serveUntilSignal(relay, v, async () => { await stopApi(); await relay.stop(); });
}

export async function runReceive(v: LiveArgs, n: LiveNumbers, cacheBytes: number): Promise<number> {
  if (!v.listen?.length || (!v.target?.length && !v['allow-destination']?.length)) throw new Error('receive needs --listen, and --target or --allow-destination');
  const relay = new ReceiverRelay({ listen: parseHostPort(v.listen[0], '0.0.0.0'), targets: parseTargets(v.target ?? []), security: security(v), cacheBytes, seedBytes: n.seedBytes,
    allowDestinations: v['allow-destination'] ?? [],
    hashStreams: Boolean(v['hash-streams']), hashBufferBytes: n.hashBufferBytes, linkTimeoutMs: n.linkTimeoutMs,
  });
  for (const f of v.seed ?? []) {
    const r = relay.seed(fs.readFileSync(f));
    log.info('seeded', { file: f, blocks: String(r.blocks), added: String(r.added), full: String(r.full) });
  }
  const a = await relay.start();
  const intake = v['seed-listen'] ? await startSeedIntake(parseHostPort(v['seed-listen']), relay) : undefined;
  log.info('relay receiver ready', { listen: `${a.host}:${a.port}`, ...(intake ? { seedListen: String(intake.port) } : {}) });
  return serveUntilSignal(relay, v, async () => { await intake?.close(); await relay.stop(); });
}
