// `cloudnet relay <send|receive|analyze|encode|decode>`.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { logger } from '../util/log.ts';
import { analyze, formatReport } from './tools/analyze.ts';
import type { StreamMode } from './codec/encoder/session-encoder.ts';
import { decodeStreams, encodeStreams } from './tools/offline.ts';
import { loadTls, parseHostPort } from './transport/net-util.ts';
import type { HostPort, LinkSecurity } from './transport/net-util.ts';
import { ReceiverRelay } from './transport/receiver.ts';
import { SenderRelay } from './transport/sender.ts';
import type { ListenSpec } from './transport/sender.ts';
import { serveStats, writeStatsFile } from './transport/stats-server.ts';
import type { StatsSource } from './transport/stats-server.ts';

const log = logger('relay');

const USAGE = `usage:
  cloudnet relay send --listen HOST:PORT[/TARGET][@MODE] ... --peer HOST:PORT (--ca F --cert F --key F [--servername N] | --plain-inside-wireguard)
                      [--cache-mb 256] [--level auto|0|1|3|6] [--window-mb 8] [--stats HOST:PORT] [--stats-file F] [--hash-streams]
  cloudnet relay receive --listen HOST:PORT --target [NAME=]HOST:PORT ... (--ca F --cert F --key F | --plain-inside-wireguard)
                      [--cache-mb 256] [--seed FILE... --seed-mb 256] [--stats HOST:PORT] [--stats-file F]
                      [--hash-streams]   (both: SHA-256 of every session's input / output in the stats)
                      --seed: content the target already holds (e.g. a pre-copied disk image), sent as references
  cloudnet relay analyze FILE... [--cache-mb 256] [--level 3] [--mode auto|qevm|nbd|generic] [--json]
  cloudnet relay encode IN... OUT [--cache-mb 256] [--level 3] [--mode M]     (- = stdin/stdout)
  cloudnet relay decode IN OUT                                                 (several sessions: OUT.1, OUT.2, ...)
MODE: auto (QEMU stream if it starts with QEVM, else NBD-aware generic), qevm, nbd, generic.`;

const MODES = ['auto', 'qevm', 'nbd', 'generic'];

function readInput(name: string): Buffer {
  return name === '-' ? fs.readFileSync(0) : fs.readFileSync(name);
}

function writeOutput(name: string, chunks: Buffer[]): void {
  if (name === '-') { for (const c of chunks) process.stdout.write(c); return; }
  const fd = fs.openSync(name, 'w');
  try { for (const c of chunks) fs.writeSync(fd, c); } finally { fs.closeSync(fd); }
}

function mode(v: string | undefined): StreamMode {
  const m = v ?? 'auto';
  if (!MODES.includes(m)) throw new Error(`bad --mode ${m}`);
  return m as StreamMode;
}

function security(v: Record<string, string | boolean | string[] | undefined>): LinkSecurity {
  if (v['plain-inside-wireguard']) return { kind: 'plain-inside-wireguard' };
  const { ca, cert, key } = v as Record<string, string | undefined>;
  if (!ca || !cert || !key) throw new Error('the relay link needs --ca, --cert and --key (mutual TLS), or --plain-inside-wireguard');
  return loadTls(ca, cert, key, v.servername as string | undefined);
}

export function parseListenSpec(s: string): ListenSpec {
  const m = /^(.*?)(?:\/([\w.-]+))?(?:@(\w+))?$/.exec(s);
  if (!m) throw new Error(`bad --listen ${s}`);
  return { addr: parseHostPort(m[1]), target: m[2] ?? 'default', mode: mode(m[3]) };
}

export function parseTargets(list: string[]): Record<string, HostPort> {
  const out: Record<string, HostPort> = {};
  for (const t of list) {
    const eq = t.indexOf('=');
    out[eq > 0 ? t.slice(0, eq) : 'default'] = parseHostPort(eq > 0 ? t.slice(eq + 1) : t);
  }
  return out;
}

const common = {
  'cache-mb': { type: 'string' }, level: { type: 'string' }, mode: { type: 'string' }, json: { type: 'boolean' },
  listen: { type: 'string', multiple: true }, peer: { type: 'string' }, target: { type: 'string', multiple: true },
  ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, servername: { type: 'string' },
  'plain-inside-wireguard': { type: 'boolean' }, 'window-mb': { type: 'string' }, stats: { type: 'string' }, 'stats-file': { type: 'string' },
  seed: { type: 'string', multiple: true }, 'seed-mb': { type: 'string' }, 'hash-streams': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function serveUntilSignal(src: StatsSource, v: { stats?: string; 'stats-file'?: string }, stop: () => Promise<void>): Promise<number> {
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

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '-h' || sub === '--help') { console.log(USAGE); return sub ? 0 : 2; }
  const { values: v, positionals } = parseArgs({ args: rest, options: common, allowPositionals: true });
  if (v.help) { console.log(USAGE); return 0; }
  const cacheBytes = Math.round(Number(v['cache-mb'] ?? 256) * (1 << 20));
  const level = v.level === undefined || v.level === 'auto' ? 'auto' : Number(v.level);
  switch (sub) {
    case 'send': {
      if (!v.listen?.length || !v.peer) throw new Error('send needs --listen and --peer');
      const relay = new SenderRelay({
        listen: v.listen.map(parseListenSpec), peer: parseHostPort(v.peer), security: security(v), cacheBytes, level,
        windowBytes: Math.round(Number(v['window-mb'] ?? 8) * (1 << 20)), hashStreams: Boolean(v['hash-streams']),
      });
      const addrs = await relay.start();
      log.info('relay sender ready', { listen: addrs.map((a) => `${a.host}:${a.port}`).join(',') });
      return serveUntilSignal(relay, v, () => relay.stop());
    }
    case 'receive': {
      if (!v.listen?.length || !v.target?.length) throw new Error('receive needs --listen and --target');
      const seedBytes = v.seed?.length ? Math.round(Number(v['seed-mb'] ?? 256) * (1 << 20)) : 0;
      const relay = new ReceiverRelay({ listen: parseHostPort(v.listen[0], '0.0.0.0'), targets: parseTargets(v.target), security: security(v), cacheBytes, seedBytes,
        hashStreams: Boolean(v['hash-streams']),
      });
      for (const f of v.seed ?? []) {
        const r = relay.seed(fs.readFileSync(f));
        log.info('seeded', { file: f, blocks: String(r.blocks), added: String(r.added), full: String(r.full) });
      }
      const a = await relay.start();
      log.info('relay receiver ready', { listen: `${a.host}:${a.port}` });
      return serveUntilSignal(relay, v, () => relay.stop());
    }
    case 'analyze': {
      if (!positionals.length) throw new Error('analyze needs at least one file');
      const rep = analyze(positionals, positionals.map(readInput), { cacheBytes, level: level === 'auto' ? 3 : level, mode: mode(v.mode) });
      console.log(v.json ? JSON.stringify(rep, null, 1) : formatReport(rep));
      return 0;
    }
    case 'encode': {
      if (positionals.length < 2) throw new Error('encode needs IN... OUT');
      const outName = positionals[positionals.length - 1];
      const inputs = positionals.slice(0, -1).map(readInput);
      const r = encodeStreams(inputs, { cacheBytes, level: level === 'auto' ? 3 : level, mode: mode(v.mode) });
      writeOutput(outName, r.out);
      const inB = inputs.reduce((a, b) => a + b.length, 0);
      const outB = r.out.reduce((a, b) => a + b.length, 0);
      process.stderr.write(`encoded ${inputs.length} stream(s): ${inB} -> ${outB} bytes (${(100 * outB / Math.max(1, inB)).toFixed(1)}%)\n`);
      return 0;
    }
    case 'decode': {
      if (positionals.length !== 2) throw new Error('decode needs IN OUT');
      const [inName, outName] = positionals;
      const { outputs } = decodeStreams(readInput(inName));
      if (outputs.length === 1) writeOutput(outName, outputs[0]);
      else {
        if (outName === '-') throw new Error('the file holds several sessions; give an output file name, not -');
        outputs.forEach((o, i) => writeOutput(`${outName}.${i + 1}`, o));
      }
      return 0;
    }
    default:
      console.error(`unknown relay command ${sub}\n${USAGE}`);
      return 2;
  }
}
