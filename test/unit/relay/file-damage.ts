// Damaged relay files, decoded in-process: the engine behind the file fuzz tests. A corpus of small
// encoded files (a few sessions of QEVM-like, NBD-like and random input, small batches, a tiny
// cache) is damaged in every way the issue names, and each damaged file is decoded as
// `cloudnet relay decode` does (decodeStreams). The decoder must either throw a DecodeError (a
// named error) or return exactly the original streams; anything else (other output, another
// exception) is a failure. Damage:
//   flip     one bit, walking every bit position of every file in turn (exhaustive per file)
//   bytes    2-16 random bytes, or a burst of up to 64, overwritten at random
//   drop     one frame removed (any frame: HELLO, OPEN, DATA, FIN, END)
//   repeat   one frame repeated, right after itself or at a later frame boundary
//   swap     two adjacent frames exchanged
//   restamp  a frame dropped or repeated and every CRC recomputed (a sender bug before the CRC):
//            the file's structure (FIN totals, END) must catch it without the checksums
//   cut      truncation at a frame boundary, walking every boundary of every file in turn; every
//            second cut is at a random byte instead
import { DecodeError, F } from '../../../src/relay/codec/index.ts';
import type { StreamMode } from '../../../src/relay/codec/index.ts';
import { checkRelayFile, decodeStreams, encodeStreams, Rng, syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { craftedQevm, nbdLike } from './fuzz-inputs.ts';

export const DAMAGE = ['flip', 'bytes', 'drop', 'repeat', 'swap', 'restamp', 'cut'] as const;
export type Damage = (typeof DAMAGE)[number];
/** Share of the cases per kind of damage (sums to 100). */
const MIX: Record<Damage, number> = { flip: 40, bytes: 15, drop: 10, repeat: 10, swap: 5, restamp: 10, cut: 10 };

interface CorpusFile {
  bytes: Buffer;
  inputs: Buffer[];
  frames: F.Frame[];
  /** Where each frame starts, and (last) where the file ends. */
  offsets: number[];
}

export interface DamageReport {
  cases: number;
  files: number;
  byDamage: Record<Damage, number>;
  /** Damaged files rejected, by the check that caught them. */
  caught: Record<string, number>;
  /** Damage that left the file decodable to exactly the original streams (none expected). */
  harmless: number;
  /** Every frame boundary of every file was cut at least once. */
  allBoundariesCut: boolean;
  /** Every bit of how many files was flipped (one at a time). */
  filesFullyFlipped: number;
  corpusBytes: number;
}

/** Small files: 1-3 sessions of up to 16 KB each, batches of 256 B - 4 KiB of ops, a 16-slot cache. */
export function buildCorpus(count: number, seed: number): CorpusFile[] {
  const rng = new Rng(seed);
  const pool: Buffer[] = [];
  for (let i = 0; i < 16; i++) {
    const p = Buffer.alloc(4096, i % 3 === 0 ? 0 : 0x41 + i);
    if (i % 4 === 1) rng.fill(p, 0, 64 + rng.int(4000));
    pool.push(p);
  }
  const files: CorpusFile[] = [];
  for (let f = 0; f < count; f++) {
    const n = 1 + rng.int(3);
    const inputs: Buffer[] = [];
    let mode: StreamMode = 'auto';
    for (let i = 0; i < n; i++) {
      const kind = rng.int(4);
      let input: Buffer;
      if (kind === 0) input = syntheticQemuStream({ seed: 1 + rng.int(5), pages: 2 + rng.int(6), rounds: 2, dirtyFraction: 0.5 });
      else if (kind === 1) input = craftedQevm(rng, pool);
      else if (kind === 2) { input = nbdLike(rng, pool); mode = 'auto'; }
      else { input = Buffer.alloc(1 + rng.int(1500)); rng.fill(input); }
      inputs.push(input.subarray(0, 2000 + rng.int(14_000))); // a cut stream is an input like any other
    }
    const enc = encodeStreams(inputs, { cacheBytes: 16 * 4096, level: rng.int(6) === 0 ? 0 : 1, mode, batchOpBytes: 256 + rng.int(4096), interleave: rng.int(2) ? 0 : 1000 + rng.int(4000) });
    const bytes = Buffer.concat(enc.out);
    const { frames } = checkRelayFile(bytes);
    const offsets = [F.FILE_MAGIC.length];
    frames.forEach((fr, i) => offsets.push(offsets[i] + (i === 0 ? F.ENVELOPE_HEADER : F.FRAME_HEADER) + fr.payload.length));
    files.push({ bytes, inputs, frames, offsets });
  }
  // Smallest first: the exhaustive bit flips walk the files in this order.
  return files.sort((a, b) => a.bytes.length - b.bytes.length);
}

function frameBytes(f: CorpusFile, i: number): Buffer {
  return f.bytes.subarray(f.offsets[i], f.offsets[i + 1]);
}

/** The file's frames (a changed list of them) written again: fresh CRCs, envelope on the first. */
function restamped(frames: F.Frame[]): Buffer {
  const w = new F.FrameWriter();
  return Buffer.concat([F.FILE_MAGIC, ...frames.map((fr) => w.frame(fr.type, fr.session, fr.payload))]);
}

/** What caught a damaged file: a short name for the error's kind. */
function category(err: DecodeError): string {
  const m = err.message;
  if (err instanceof F.FrameError) return err.reason === 'truncated' ? 'truncated frame' : /crc mismatch/.test(m) ? 'crc mismatch' : 'bad frame header';
  if (/bad magic/.test(m)) return 'bad magic';
  if (/HELLO|version/.test(m)) return 'bad HELLO';
  if (/end-of-file marker|no FIN|after the end-of-file/.test(m)) return 'no END / FIN';
  if (/FIN/.test(m)) return 'FIN totals';
  if (/frame \d+/.test(m)) return 'file structure';
  return `decode: ${err.reason}`;
}

/**
 * Runs `cases` damaged decodes over the corpus. Throws on the first damaged file that decodes to
 * anything but the original streams, or that fails with something other than a DecodeError.
 */
export function runDamage(corpus: CorpusFile[], cases: number, seed: number): DamageReport {
  const rng = new Rng(seed);
  const byDamage = Object.fromEntries(DAMAGE.map((d) => [d, 0])) as Record<Damage, number>;
  const caught: Record<string, number> = {};
  let harmless = 0;
  // Walking cursors: flips go through every bit of file 0, then file 1...; cuts through every boundary.
  let flipFile = 0;
  let flipBit = 0;
  let filesFullyFlipped = 0;
  let cutFile = 0;
  let cutAt = 0;
  let cutWalks = 0;
  let cuts = 0;
  const plan: Damage[] = DAMAGE.flatMap((d) => Array<Damage>(MIX[d]).fill(d));
  for (let c = 0; c < cases; c++) {
    const damage = plan[c % plan.length];
    byDamage[damage]++;
    let f = corpus[rng.int(corpus.length)];
    const n = f.frames.length;
    let bad: Buffer;
    switch (damage) {
      case 'flip': {
        f = corpus[flipFile];
        bad = Buffer.from(f.bytes);
        bad[flipBit >> 3] ^= 1 << (flipBit & 7);
        if (++flipBit === f.bytes.length * 8) { flipBit = 0; filesFullyFlipped++; flipFile = (flipFile + 1) % corpus.length; }
        break;
      }
      case 'bytes': {
        bad = Buffer.from(f.bytes);
        if (rng.int(2)) for (let i = 0, k = 2 + rng.int(15); i < k; i++) bad[rng.int(bad.length)] ^= 1 + rng.int(255);
        else { const at = rng.int(bad.length); for (let i = at; i < Math.min(bad.length, at + 1 + rng.int(64)); i++) bad[i] ^= 1 + rng.int(255); }
        break;
      }
      case 'drop': {
        const k = rng.int(n);
        bad = Buffer.concat([f.bytes.subarray(0, f.offsets[k]), f.bytes.subarray(f.offsets[k + 1])]);
        break;
      }
      case 'repeat': {
        const k = rng.int(n);
        const at = rng.int(2) ? k + 1 : k + 1 + rng.int(n - k); // a frame boundary after frame k
        bad = Buffer.concat([f.bytes.subarray(0, f.offsets[at]), frameBytes(f, k), f.bytes.subarray(f.offsets[at])]);
        break;
      }
      case 'swap': {
        const k = rng.int(n - 1);
        bad = Buffer.concat([f.bytes.subarray(0, f.offsets[k]), frameBytes(f, k + 1), frameBytes(f, k), f.bytes.subarray(f.offsets[k + 2])]);
        break;
      }
      case 'restamp': {
        const k = rng.int(n);
        const frames = [...f.frames];
        if (rng.int(2)) frames.splice(k, 1);
        else frames.splice(k + 1 + rng.int(n - k), 0, f.frames[k]);
        bad = restamped(frames);
        break;
      }
      case 'cut': {
        if (cuts++ % 2) { bad = f.bytes.subarray(0, rng.int(f.bytes.length)); break; }
        f = corpus[cutFile];
        bad = f.bytes.subarray(0, cutAt < 0 ? 0 : f.offsets[cutAt]); // cutAt -1: empty file
        if (++cutAt === f.offsets.length - 1) { cutAt = -1; cutFile++; if (cutFile === corpus.length) { cutFile = 0; cutWalks++; } }
        break;
      }
    }
    let outputs: Buffer[][];
    try {
      outputs = decodeStreams(bad).outputs;
    } catch (err) {
      if (!(err instanceof DecodeError)) throw new Error(`case ${c} (${damage}): not a named decode error: ${(err as Error).stack ?? String(err)}`);
      const k = category(err);
      caught[k] = (caught[k] ?? 0) + 1;
      continue;
    }
    const same = outputs.length === f.inputs.length && outputs.every((o, i) => Buffer.concat(o).equals(f.inputs[i]));
    if (!same) throw new Error(`case ${c} (${damage}): SILENT CORRUPTION: a damaged file decoded without error to other streams (${outputs.length} outputs for ${f.inputs.length} inputs)`);
    harmless++;
  }
  return {
    cases, files: corpus.length, byDamage, caught, harmless, allBoundariesCut: cutWalks > 0, filesFullyFlipped,
    corpusBytes: corpus.reduce((a, f) => a + f.bytes.length, 0),
  };
}

export function formatReport(r: DamageReport, ms: number): string {
  const caught = Object.entries(r.caught).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `# file damage: ${r.cases} damaged files decoded (${DAMAGE.map((d) => `${d} ${r.byDamage[d]}`).join(', ')}) from a corpus of ${r.files} files (${r.corpusBytes} bytes)`,
    `# rejected with a named error: ${r.cases - r.harmless} (${caught}); decoded to the original streams: ${r.harmless}; silent corruptions: 0`,
    `# every bit of ${r.filesFullyFlipped} file(s) flipped one at a time; every frame boundary of every file cut: ${r.allBoundariesCut}; ${(ms / 1000).toFixed(1)} s`,
  ].join('\n');
}
