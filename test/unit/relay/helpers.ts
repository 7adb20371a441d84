// Shared by the relay unit tests: run inputs through encoder -> packed batch -> decoder with a
// chosen write chunking, as the live relay does, and return each session's output.
import { createContext, packBatch, SessionDecoder, SessionEncoder, unpackBatch, type CodecContext, type StreamMode } from '../../../src/relay/codec/index.ts';
import { Rng } from '../../../src/relay/tools/index.ts';

export interface Pair {
  tx: CodecContext;
  rx: CodecContext;
}

export function pair(cacheBytes: number): Pair {
  return { tx: createContext(cacheBytes), rx: createContext(cacheBytes) };
}

/**
 * Encodes `input` in random-size writes with random idle flushes (and, with forceFlushes, stall
 * flushes that make the parser give up); decodes each batch as it is made.
 */
export function roundTrip(p: Pair, input: Buffer, rng: Rng, mode: StreamMode = 'auto', level = 1, forceFlushes = false): { output: Buffer; enc: SessionEncoder } {
  const dec = new SessionDecoder(p.rx);
  const out: Buffer[] = [];
  const enc = new SessionEncoder(p.tx, (b) => {
    const packed = packBatch(b.ops, b.rawLen, level, undefined, b.inserts);
    const { ops, rawLen, inserts } = unpackBatch(packed);
    out.push(dec.decode(ops, rawLen, undefined, inserts));
  }, { mode, batchOpBytes: 1024 + rng.int(65536) });
  let off = 0;
  while (off < input.length) {
    const n = 1 + rng.int(rng.int(4) === 0 ? 64 : 9000);
    enc.write(input.subarray(off, off + n));
    off += n;
    const r = rng.int(16);
    if (r === 0) enc.flush(false);
    else if (forceFlushes && r === 1 && rng.int(8) === 0) enc.flush(true);
  }
  enc.end();
  return { output: Buffer.concat(out), enc };
}
