// Reduction report of the codec on recorded streams: what each technique covered, what reached
// the wire, and plain zstd of the same bytes for comparison.
import zlib from 'node:zlib';
import { encodeStreams } from './offline.ts';
import type { OfflineOptions } from './offline.ts';
import { TECHNIQUES, zstdCompress } from '../codec/index.ts';

export interface AnalyzeReport {
  files: { name: string; bytes: number; wireBytes: number; ratio: number; rounds: number; mode: string; syncLost?: string }[];
  techniques: Record<string, { count: number; inputBytes: number; opBytes: number }>;
  inputBytes: number;
  opBytes: number;
  wireBytes: number;
  ratio: number;
  zstd1Bytes: number;
  zstd3Bytes: number;
  encodeMBps: number;
  cacheHitRate: number;
}

/** Plain zstd of a whole stream, streamed in 1 MiB pieces with one context (like `zstd -L`). */
export function plainZstdSize(buf: Buffer, level: number): number {
  if (buf.length <= 64 << 20) return zstdCompress(buf, level).length;
  const z = zlib.zstdCompressSync(buf, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
  return z.length;
}

export function analyze(names: string[], inputs: Buffer[], opts: OfflineOptions = {}): AnalyzeReport {
  const r = encodeStreams(inputs, opts);
  const techniques: AnalyzeReport['techniques'] = {};
  TECHNIQUES.forEach((t, i) => {
    techniques[t] = { count: 0, inputBytes: 0, opBytes: 0 };
    for (const s of r.stats) {
      techniques[t].count += s.count[i];
      techniques[t].inputBytes += s.rawBytes[i];
      techniques[t].opBytes += s.opBytes[i];
    }
  });
  const inputBytes = inputs.reduce((a, b) => a + b.length, 0);
  const wireBytes = r.out.reduce((a, b) => a + b.length, 0);
  let lookups = 0;
  let hits = 0;
  for (const s of r.stats) { lookups += s.cacheLookups; hits += s.cacheHits; }
  return {
    files: names.map((name, i) => ({
      name, bytes: inputs[i].length, wireBytes: r.stats[i].wireOut, ratio: inputs[i].length ? r.stats[i].wireOut / inputs[i].length : 0,
      rounds: r.stats[i].rounds.length, mode: r.stats[i].mode, syncLost: r.stats[i].syncLost || undefined,
    })),
    techniques,
    inputBytes,
    opBytes: r.stats.reduce((a, s) => a + s.opsOut, 0),
    wireBytes,
    ratio: inputBytes ? wireBytes / inputBytes : 0,
    zstd1Bytes: inputs.reduce((a, b) => a + plainZstdSize(b, 1), 0),
    zstd3Bytes: inputs.reduce((a, b) => a + plainZstdSize(b, 3), 0),
    encodeMBps: r.cpuMs ? inputBytes / 1e6 / (r.cpuMs / 1000) : 0,
    cacheHitRate: lookups ? hits / lookups : 0,
  };
}

const mb = (n: number): string => (n / 1e6).toFixed(2);
const pct = (a: number, b: number): string => (b ? (100 * a / b).toFixed(1) : '0.0') + '%';

export function formatReport(rep: AnalyzeReport): string {
  const lines: string[] = [];
  lines.push('file                                      input MB   wire MB   wire/input  rounds  mode');
  for (const f of rep.files) {
    lines.push(`${f.name.slice(-40).padEnd(40)} ${mb(f.bytes).padStart(10)} ${mb(f.wireBytes).padStart(9)} ${pct(f.wireBytes, f.bytes).padStart(11)} ${String(f.rounds).padStart(7)}  ${f.mode}${f.syncLost ? ` (generic after: ${f.syncLost})` : ''}`);
  }
  lines.push('');
  lines.push('technique          count      input MB  share of input   op MB (before zstd)');
  for (const [t, v] of Object.entries(rep.techniques)) {
    lines.push(`${t.padEnd(16)} ${String(v.count).padStart(8)} ${mb(v.inputBytes).padStart(12)} ${pct(v.inputBytes, rep.inputBytes).padStart(15)} ${mb(v.opBytes).padStart(12)}`);
  }
  lines.push('');
  lines.push(`input ${mb(rep.inputBytes)} MB -> ops ${mb(rep.opBytes)} MB -> wire ${mb(rep.wireBytes)} MB (${pct(rep.wireBytes, rep.inputBytes)} of input; cache hit rate ${(100 * rep.cacheHitRate).toFixed(1)}%)`);
  lines.push(`plain zstd -1: ${mb(rep.zstd1Bytes)} MB (${pct(rep.zstd1Bytes, rep.inputBytes)}); plain zstd -3: ${mb(rep.zstd3Bytes)} MB (${pct(rep.zstd3Bytes, rep.inputBytes)}); relay/zstd-3 = ${pct(rep.wireBytes, rep.zstd3Bytes)}`);
  lines.push(`encode speed: ${rep.encodeMBps.toFixed(0)} MB/s of input per CPU-second`);
  return lines.join('\n');
}
