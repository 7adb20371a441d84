// `cloudnet relay <send|receive|analyze|encode|decode>`: one argument parser, then the live relays
// (transport/cli.ts) or the offline tools (tools/cli.ts).
import { parseArgs } from 'node:util';
import { mibFlag } from '../util/flags.ts';
import { parseStreamMode } from './codec/index.ts';
import type { RelayHooks } from './transport/cli.ts';

// Loaded per subcommand: the offline tools do not pull in TLS, sockets, metrics and the API
// (a third of a second of start-up per `relay encode`/`decode`, measured).
const tools = (): Promise<typeof import('./tools/cli.ts')> => import('./tools/cli.ts');
const transport = (): Promise<typeof import('./transport/cli.ts')> => import('./transport/cli.ts');

const USAGE = `usage:
  cloudnet relay send [--listen HOST:PORT[/TARGET][@MODE] ...] --peer HOST:PORT (--ca F --cert F --key F [--servername N] | --plain-inside-wireguard)
                      [--cache-mb 256] [--level auto|0..19] [--window-mb 8] [--stats HOST:PORT] [--stats-file F] [--hash-streams [--hash-streams-buffer-mb N]]
                      [--api HOST:PORT|unix:PATH --api-token-file F [--api-cert F --api-key F] [--intercept nft[:TABLE]] [--flow-listen HOST] [--bypass-above-mbit 1500]]
                      --api: the operator registers migration flows there (bearer token; TLS over TCP);
                      --intercept: the gateway redirects each registered flow to its own local port (nftables)
                      --bypass-above-mbit: on a link probed at least this fast, registered flows bypass the relay (0: never)
                      [--link-timeout-s 15]: the link counts as cut after this long without a byte from the peer (keepalives every
                      second keep it busy); its migrations are aborted, so QEMU fails them and the source runs on (0: never)
  cloudnet relay receive --listen HOST:PORT (--target [NAME=]HOST:PORT ... | --allow-destination CIDR ...) (--ca F --cert F --key F | --plain-inside-wireguard)
                      [--link-timeout-s 15] (applied to senders that send keepalives)
                      [--cache-mb 256] [--seed FILE... --seed-mb 256] [--seed-listen HOST:PORT] [--stats HOST:PORT] [--stats-file F]
                      [--hash-streams [--hash-streams-buffer-mb N]]   (both: SHA-256 of every session's input / output
                      in the stats; with a buffer, copied as the bytes pass and hashed when the session is over)
                      --seed: content the target already holds (e.g. a pre-copied disk image), sent as references
                      --seed-listen: take such content at run time from local clients (raw 4 KiB pages per connection)
  cloudnet relay analyze FILE... [--cache-mb 256] [--level 3] [--mode auto|qevm|nbd|generic] [--json]
  cloudnet relay encode IN... OUT [--cache-mb 256] [--level 3] [--mode M]     (- = stdin/stdout)
  cloudnet relay decode IN OUT                                                 (several sessions: OUT.1, OUT.2, ...)
MODE: auto (QEMU stream if it starts with QEVM, else NBD-aware generic), qevm, nbd, generic.`;

const common = {
  'cache-mb': { type: 'string' }, level: { type: 'string' }, mode: { type: 'string' }, json: { type: 'boolean' },
  listen: { type: 'string', multiple: true }, peer: { type: 'string' }, target: { type: 'string', multiple: true },
  ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, servername: { type: 'string' },
  'plain-inside-wireguard': { type: 'boolean' }, 'window-mb': { type: 'string' }, stats: { type: 'string' }, 'stats-file': { type: 'string' },
  seed: { type: 'string', multiple: true }, 'seed-mb': { type: 'string' }, 'seed-listen': { type: 'string' }, 'hash-streams': { type: 'boolean' }, 'hash-streams-buffer-mb': { type: 'string' },
  api: { type: 'string' }, 'api-token-file': { type: 'string' }, 'api-cert': { type: 'string' }, 'api-key': { type: 'string' },
  intercept: { type: 'string' }, 'flow-listen': { type: 'string' }, 'allow-destination': { type: 'string', multiple: true },
  'bypass-above-mbit': { type: 'string' }, 'link-timeout-s': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** zstd's levels without its "ultra" mode (whose windows a receiver would have to allocate); 0 = stored. */
const MAX_LEVEL = 19;

/** `auto`, or a fixed zstd level 0..19 (0 = batches stored). */
export function parseLevel(value: string | undefined): number | 'auto' {
  if (value === undefined || value === 'auto') return 'auto';
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > MAX_LEVEL) throw new Error(`--level ${value}: auto, or a zstd level from 0 (stored) to ${MAX_LEVEL}`);
  return n;
}

/** The live relays warm their codec (and test it) before they listen: see tools/warm-up.ts. */
async function warmUp(role: string): Promise<void> {
  const [{ warmUpCodec }, { logger }] = await Promise.all([import('./tools/warm-up.ts'), import('../util/log.ts')]);
  const r = warmUpCodec();
  logger(`relay-${role}`).info('relay codec warmed up and self-tested', { streamBytes: r.streamBytes, cpuMs: Math.round(r.cpuMs) });
}

export async function run(argv: string[], hooks: RelayHooks = {}): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '-h' || sub === '--help') { console.log(USAGE); return sub ? 0 : 2; }
  const { values: v, positionals } = parseArgs({ args: rest, options: common, allowPositionals: true });
  if (v.help) { console.log(USAGE); return 0; }
  // Numbers are checked before anything starts (the live relays' before their warm-up): not NaN
  // sizes deep in the codec, or an encoded file that its own decoder refuses (a 0-byte cache makes
  // an invalid HELLO).
  const cacheBytes = mibFlag('cache-mb', v['cache-mb'], 256, { min: 1 });
  const level = parseLevel(v.level);
  // The offline tools have no link to adapt to: 'auto' means the live relays' default level.
  const offline = () => ({ cacheBytes, level: level === 'auto' ? 3 : level, mode: parseStreamMode(v.mode) });
  switch (sub) {
    case 'send': {
      const t = await transport();
      const n = t.liveNumbers(v);
      await warmUp('sender');
      return t.runSend(v, n, cacheBytes, level, hooks);
    }
    case 'receive': {
      const t = await transport();
      const n = t.liveNumbers(v);
      await warmUp('receiver');
      return t.runReceive(v, n, cacheBytes);
    }
    case 'analyze':
      return (await tools()).runAnalyze(positionals, offline(), Boolean(v.json));
    case 'encode':
      return (await tools()).runEncode(positionals, offline());
    case 'decode':
      return (await tools()).runDecode(positionals);
    default:
      console.error(`unknown relay command ${sub}\n${USAGE}`);
      return 2;
  }
}
