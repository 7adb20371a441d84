// `cloudnet relay send|receive`: the live relay pair, serving its stats until SIGINT/SIGTERM.
// Arguments are parsed once, in ../cli.ts.
import fs from 'node:fs';
import { logger } from '../../util/log.ts';
import { parseStreamMode } from '../codec/index.ts';
import { loadTls, parseHostPort } from './net-util.ts';
import type { HostPort, LinkSecurity } from './net-util.ts';
import { ReceiverRelay } from './receiver.ts';
import { startSeedIntake } from './seed-intake.ts';
import { SenderRelay } from './sender.ts';
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
  stats?: string;
  'stats-file'?: string;
  seed?: string[];
  'seed-mb'?: string;
  'seed-listen'?: string;
  'hash-streams'?: boolean;
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

export async function runSend(v: LiveArgs, cacheBytes: number, level: number | 'auto'): Promise<number> {
  if (!v.listen?.length || !v.peer) throw new Error('send needs --listen and --peer');
  const relay = new SenderRelay({
    listen: v.listen.map(parseListenSpec), peer: parseHostPort(v.peer), security: security(v), cacheBytes, level,
    windowBytes: Math.round(Number(v['window-mb'] ?? 8) * (1 << 20)), hashStreams: Boolean(v['hash-streams']),
  });
  const addrs = await relay.start();
  log.info('relay sender ready', { listen: addrs.map((a) => `${a.host}:${a.port}`).join(',') });
  return serveUntilSignal(relay, v, () => relay.stop());
}

export async function runReceive(v: LiveArgs, cacheBytes: number): Promise<number> {
  if (!v.listen?.length || !v.target?.length) throw new Error('receive needs --listen and --target');
  const seedBytes = v.seed?.length || v['seed-listen'] ? Math.round(Number(v['seed-mb'] ?? 256) * (1 << 20)) : 0;
  const relay = new ReceiverRelay({ listen: parseHostPort(v.listen[0], '0.0.0.0'), targets: parseTargets(v.target), security: security(v), cacheBytes, seedBytes,
    hashStreams: Boolean(v['hash-streams']),
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
