// Start-up warm-up and self-test of the codec (`relay send` and `relay receive` run it before
// they listen): a small synthetic QEMU stream is encoded and decoded once, in a cache of its own,
// and must come back byte-exact.
//
// Why: a relay started just before a migration ran that migration's first ~100 MB in cold code
// (V8 compiles the fingerprint, cache, parser and decoder paths while the stream waits for them,
// on compiler threads that compete with QEMU for the same cores). Measured with perf in a
// 1 Gbit/s WAN run, V8's compiler and GC threads took ~0.2 of the 2.2 CPU-s spent during the
// migration; on loopback a relay pair warmed with 128 MB needed 12 % less CPU for the next 130 MB
// than a cold one. The self-test costs that once, before the relay says it is ready, and a codec
// that does not reproduce its input on this machine stops the relay before it carries anything.
import { decodeFrames, encodeStreams } from './offline.ts';
import { syntheticQemuStream } from './synthetic.ts';

export interface WarmUpResult {
  streamBytes: number;
  cpuMs: number;
}

/** Encodes and decodes a synthetic stream of about `bytes`; throws if the output differs. */
export function warmUpCodec(bytes = 24 << 20): WarmUpResult {
  const t0 = process.cpuUsage();
  const rounds = 3;
  const stream = syntheticQemuStream({ seed: 0x5eed, pages: Math.max(16, Math.floor(bytes / 4096 / rounds)), rounds });
  const cacheBytes = 16 << 20;
  // zstd-1 as the live relays' first step on most links; small batches: more of them, so the
  // batch and frame paths are exercised as often as the page paths.
  const encoded = Buffer.concat(encodeStreams([stream], { cacheBytes, level: 1 }).out);
  let pos = 0;
  let exact = true;
  decodeFrames(encoded, (_session, out) => {
    if (exact && !out.equals(stream.subarray(pos, pos + out.length))) exact = false;
    pos += out.length;
  });
  if (!exact || pos !== stream.length) {
    throw new Error(`relay codec self-test failed: a synthetic stream of ${stream.length} bytes did not decode to itself (${pos} bytes out)`);
  }
  const cpu = process.cpuUsage(t0);
  return { streamBytes: stream.length, cpuMs: (cpu.user + cpu.system) / 1000 };
}
