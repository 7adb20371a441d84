// `cloudnet relay analyze|encode|decode`: the codec applied to files (sizing a WAN from recorded
// streams, or carrying a stream by hand). Arguments are parsed once, in ../cli.ts.
import fs from 'node:fs';
import { analyze, formatReport } from './analyze.ts';
import { DecodeError } from '../codec/index.ts';
import { decodeStreams, encodeStreams } from './offline.ts';
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

export function runEncode(positionals: string[], opts: OfflineOptions): number {
  if (positionals.length < 2) throw new Error('encode needs IN... OUT');
  const outName = positionals[positionals.length - 1];
  const inputs = positionals.slice(0, -1).map(readInput);
  const r = encodeStreams(inputs, opts);
  writeOutput(outName, r.out);
  const inB = inputs.reduce((a, b) => a + b.length, 0);
  const outB = r.out.reduce((a, b) => a + b.length, 0);
  process.stderr.write(`encoded ${inputs.length} stream(s): ${inB} -> ${outB} bytes (${(100 * outB / Math.max(1, inB)).toFixed(1)}%)\n`);
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
  let outputs: Buffer[][];
  try {
    outputs = decodeStreams(readInput(inName)).outputs;
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    process.stderr.write(`relay decode: ${inName === '-' ? 'stdin' : inName}: ${err.message}\n`);
    return 1;
  }
  if (outputs.length === 1) writeOutput(outName, outputs[0]);
  else {
    if (outName === '-') throw new Error('the file holds several sessions; give an output file name, not -');
    outputs.forEach((o, i) => writeOutput(`${outName}.${i + 1}`, o));
  }
  return 0;
}
