// Microbenchmark behind the relay's frame checksums (protocol version 3): what each candidate
// integrity check costs per MB of stream, next to what encoding and decoding that MB costs.
//   A. CRC-32 (zlib.crc32, native) over every frame: header + payload, i.e. the wire bytes.
//   B. zstd's own content checksum (XXH64 of the ops, ZSTD_c_checksumFlag): the extra CPU of
//      compressing and decompressing with it on; stored batches would still need a CRC.
//   C. CRC-32 of each batch's decoded output (an end-to-end check of the decoder's result).
// `node bench/relay-integrity.ts [--repeat 5] [--pages 16384] [--out F]`. Numbers are CPU ms per MB
// of input stream, the median of the repeats (interleaved, so that load from other jobs hits all
// alike); decode is the receiver's path (BatchUnpacker, pooled output buffer). Writes
// bench/results/relay-integrity.json.
import crypto from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BatchUnpacker, createContext, packBatch, SessionDecoder, SessionEncoder } from '../src/relay/codec/index.ts';
import { syntheticQemuStream } from '../src/relay/tools/index.ts';

const { values: args } = parseArgs({ options: { repeat: { type: 'string' }, pages: { type: 'string' }, out: { type: 'string' } } });
const repeat = Number(args.repeat ?? 5);
const pages = Number(args.pages ?? 16384);
const LEVEL = 3;
const CACHE = 64 << 20;

interface Captured { ops: Buffer; rawLen: number; inserts: number }

function capture(input: Buffer): Captured[] {
  const out: Captured[] = [];
  const enc = new SessionEncoder(createContext(CACHE), (b) => out.push({ ops: Buffer.from(b.ops), rawLen: b.rawLen, inserts: b.inserts }));
  for (let o = 0; o < input.length; o += 1 << 16) enc.write(input.subarray(o, o + (1 << 16)));
  enc.end();
  return out;
}

function cpu(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };

function measure(name: string, input: Buffer): void {
  const batches = capture(input);
  const mb = input.length / 1e6;
  const zOpts = (checksum: boolean): zlib.ZstdOptions => ({ params: { [zlib.constants.ZSTD_c_compressionLevel]: LEVEL, [zlib.constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 } });
  const plain = batches.map((b) => zlib.zstdCompressSync(b.ops, zOpts(false)));
  const checked = batches.map((b) => zlib.zstdCompressSync(b.ops, zOpts(true)));
  const packed = batches.map((b, i) => packBatch(b.ops, b.rawLen, LEVEL, plain[i], b.inserts));
  const wire = packed.reduce((a, p) => a + p.length + 13, 0);
  const stored = packed.filter((p) => p[0] === 0).reduce((a, p) => a + p.length, 0);
  const t: Record<string, number[]> = { encode: [], decode: [], crcFrames: [], zstdCkCompress: [], zstdCkDecompress: [], crcOutput: [] };
  for (let r = 0; r < repeat; r++) {
    t.encode.push(cpu(() => { for (const b of batches) packBatch(b.ops, b.rawLen, LEVEL, zlib.zstdCompressSync(b.ops, zOpts(false)), b.inserts); }) + cpu(() => capture(input)));
    const dec = new SessionDecoder(createContext(CACHE));
    const unpacker = new BatchUnpacker();
    const into = Buffer.allocUnsafeSlow(8 << 20).fill(0);
    t.decode.push(cpu(() => { for (const p of packed) { const u = unpacker.unpack(p); dec.decode(u.ops, u.rawLen, into, u.inserts); } }));
    // C: a batch's decoded output is its slice of the input: the same bytes to checksum.
    t.crcOutput.push(cpu(() => { let c = 0; let o = 0; for (const b of batches) { c = zlib.crc32(input.subarray(o, o + b.rawLen), c); o += b.rawLen; } }));
    const hdr = Buffer.alloc(9);
    t.crcFrames.push(cpu(() => { let c = 0; for (const p of packed) { c = zlib.crc32(hdr, c); c = zlib.crc32(p, c); } }));
    const comp = cpu(() => { for (const b of batches) zlib.zstdCompressSync(b.ops, zOpts(true)); }) - cpu(() => { for (const b of batches) zlib.zstdCompressSync(b.ops, zOpts(false)); });
    t.zstdCkCompress.push(comp);
    const dOpts = (b: Captured): zlib.ZstdOptions => ({ maxOutputLength: Math.max(b.ops.length, 1), chunkSize: Math.max(b.ops.length, 64) });
    t.zstdCkDecompress.push(cpu(() => { checked.forEach((z, i) => zlib.zstdDecompressSync(z, dOpts(batches[i]))); }) - cpu(() => { plain.forEach((z, i) => zlib.zstdDecompressSync(z, dOpts(batches[i]))); }));
  }
  const per = (k: string): string => (median(t[k]) / mb).toFixed(4);
  results.push({
    name, inputBytes: input.length, batches: batches.length, wireBytes: wire, storedBytes: stored,
    msPerMB: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v) / mb])), runs: t,
  });
  console.log(`\n${name}: ${mb.toFixed(1)} MB of stream, ${batches.length} batches, wire ${(100 * wire / input.length).toFixed(1)} % (stored batches ${(100 * stored / Math.max(1, wire)).toFixed(1)} % of it)`);
  console.log(`  encode ${per('encode')} ms/MB, decode ${per('decode')} ms/MB (unpack + replay)`);
  console.log(`  A. CRC-32 of frames:           ${per('crcFrames')} ms/MB  = ${(100 * median(t.crcFrames) / median(t.decode)).toFixed(1)} % of decode, ${(100 * median(t.crcFrames) / median(t.encode)).toFixed(2)} % of encode`);
  console.log(`  B. zstd checksum: compress +${per('zstdCkCompress')}, decompress +${per('zstdCkDecompress')} ms/MB (noise-level differences can be negative); +${(checked.reduce((a, z) => a + z.length, 0) - plain.reduce((a, z) => a + z.length, 0))} bytes; stored batches uncovered`);
  console.log(`  C. CRC-32 of decoded output:   ${per('crcOutput')} ms/MB  = ${(100 * median(t.crcOutput) / median(t.decode)).toFixed(1)} % of decode`);
}

const results: Record<string, unknown>[] = [];
const load0 = os.loadavg();
console.log(`node ${process.version}, ${os.cpus()[0]?.model}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; median of ${repeat}`);
measure('synthetic-a (text/random/zero/dup pages, 5 rounds)', syntheticQemuStream({ seed: 1, pages, rounds: 5 }));
measure('synthetic, mostly random pages (zstd still gets them to ~78 %)', syntheticQemuStream({ seed: 3, pages, rounds: 2, randomFraction: 0.9, zeroFraction: 0.02, duplicateFraction: 0.02 }));
measure('random bytes (incompressible: stored batches)', crypto.randomBytes(pages * 4096));
console.log(`\nload average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const outFile = args.out ?? path.join(import.meta.dirname, 'results', 'relay-integrity.json');
fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, loadavg: [load0, os.loadavg()], repeat, results }, null, 1));
console.log(`wrote ${outFile}`);
