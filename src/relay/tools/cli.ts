// `cloudnet relay analyze|encode|decode`: the codec applied to files (sizing a WAN from recorded
// streams, or carrying a stream by hand). Arguments are parsed once, in ../cli.ts.
import fs from 'node:fs';
import { analyze, formatReport } from './analyze.ts';
import { DecodeError } from '../codec/index.ts';
import { decodeFrames, decodeStreams, OfflineEncoder } from './offline.ts';
import type { OfflineOptions } from './offline.ts';

function readInput(name: string): Buffer {
  return name === '-' ? fs.readFileSync(0) : fs.readFileSync(name);
}

function writeOutput(name: string, chunks: Buffer[]): void {
  if (name === '-') { for (const c of chunks) process.stdout.write(c); return; }
  const fd = fs.openSync(name, 'w');
  try { for (const c of chunks) fs.writeSync(fd, c); } finally { fs.closeSync(fd); }
}

export function runAnalyze(files: string[], opts: OfflineOptions, json: boolean): number {
  if (!files.length) throw new Error('analyze needs at least one file');
  const rep = analyze(files, files.map(readInput), opts);
  console.log(json ? JSON.stringify(rep, null, 1) : formatReport(rep));
  return 0;
}

/** Reads a file (or stdin) in pieces into one reused buffer, handing each piece to `fn`. */
function readPieces(name: string, piece: Buffer, fn: (chunk: Buffer) => void): number {
  if (name === '-') { const all = fs.readFileSync(0); fn(all); return all.length; }
  const fd = fs.openSync(name, 'r');
  let total = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, piece, 0, piece.length, null);
      if (n === 0) return total;
      total += n;
      fn(piece.subarray(0, n));
    }
  } finally { fs.closeSync(fd); }
}

/** Writes to a file (or stdout) as pieces come, in large writes. */
class PieceWriter {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafeSlow(4 << 20);
  private len = 0;
  bytes = 0;
  constructor(name: string) {
    this.fd = name === '-' ? 1 : fs.openSync(name, 'w');
  }
  write(piece: Buffer): void {
    this.bytes += piece.length;
    if (this.len + piece.length > this.buf.length) this.flush();
    if (piece.length >= this.buf.length) { writeAll(this.fd, piece); return; }
    piece.copy(this.buf, this.len);
    this.len += piece.length;
  }
  flush(): void {
    if (this.len) writeAll(this.fd, this.buf.subarray(0, this.len));
    this.len = 0;
  }
  close(): void {
    this.flush();
    if (this.fd !== 1) fs.closeSync(this.fd);
  }
}

function writeAll(fd: number, b: Buffer): void {
  for (let o = 0; o < b.length;) {
    try {
      o += fs.writeSync(fd, b, o, b.length - o);
    } catch (err) {
      // stdout may be a non-blocking pipe: wait for it instead of failing.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

/** Encodes the inputs as they are read (1 MiB at a time) and writes the file as it is made. */
export function runEncode(positionals: string[], opts: OfflineOptions): number {
  if (positionals.length < 2) throw new Error('encode needs IN... OUT');
  const outName = positionals[positionals.length - 1];
  const names = positionals.slice(0, -1);
  const out = new PieceWriter(outName);
  const enc = new OfflineEncoder(names.length, (p) => out.write(p), opts);
  const piece = Buffer.allocUnsafeSlow(1 << 20);
  let inB = 0;
  names.forEach((name, i) => { inB += readPieces(name, piece, (chunk) => enc.write(i, chunk)); });
  enc.end();
  out.close();
  process.stderr.write(`encoded ${names.length} stream(s): ${inB} -> ${out.bytes} bytes (${(100 * out.bytes / Math.max(1, inB)).toFixed(1)}%)\n`);
  return 0;
}

/**
 * Writes nothing unless the whole file decodes: a damaged or cut file is exit code 1 and one line
 * on stderr naming what is wrong (e.g. "relay decode: vm.cnr: corrupt frame 12 at byte 3456 (crc
 * mismatch)", "... truncated: session 3 has no FIN"), never a short or wrong output.
 */
export function runDecode(positionals: string[]): number {
  if (positionals.length !== 2) throw new Error('decode needs IN OUT');
  const [inName, outName] = positionals;
  const input = readInput(inName);
  const fail = (err: unknown): number => {
    if (!(err instanceof DecodeError)) throw err;
    process.stderr.write(`relay decode: ${inName === '-' ? 'stdin' : inName}: ${err.message}\n`);
    return 1;
  };
  if (outName === '-') {
    // stdout cannot be taken back: decode everything first.
    let outputs: Buffer[][];
    try { outputs = decodeStreams(input).outputs; } catch (err) { return fail(err); }
    if (outputs.length !== 1) throw new Error('the file holds several sessions; give an output file name, not -');
    writeOutput(outName, outputs[0]);
    return 0;
  }
  // Into temporary files beside the outputs, renamed once the whole file has decoded (a batch
  // that fails to decode removes them): a damaged file leaves no output behind.
  const tmp = `${outName}.partial-${process.pid}`;
  const writers = new Map<number, { w: PieceWriter; name: string }>();
  let order: number[];
  try {
    order = decodeFrames(input, (session, out) => {
      let entry = writers.get(session);
      if (!entry) writers.set(session, entry = { w: new PieceWriter(`${tmp}.${session}`), name: `${tmp}.${session}` });
      entry.w.write(out);
    }).sessions;
  } catch (err) {
    for (const { w, name } of writers.values()) { w.close(); fs.rmSync(name, { force: true }); }
    return fail(err);
  }
  for (const { w } of writers.values()) w.close();
  const finalName = (i: number): string => (order.length === 1 ? outName : `${outName}.${i + 1}`);
  order.forEach((session, i) => {
    const entry = writers.get(session);
    if (entry) fs.renameSync(entry.name, finalName(i));
    else fs.writeFileSync(finalName(i), ''); // a session without data
  });
  return 0;
}
