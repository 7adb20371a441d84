// Cost of a content-cache lookup when a guest floods memory with pages crafted to share one
// fingerprint, against ordinary lookups (a hit and a miss). The unit test
// (test/unit/relay/cache.test.ts) asserts the bound in counted work, compares and probes per
// lookup; this measures what that work costs here, in microseconds of CPU per lookup (median of
// --repeat runs). `npm run bench:cache-flood [-- --repeat 5 --out file.json]`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ContentCache, fingerprint, FP_WORDS } from '../src/relay/codec/cache.ts';

const { values: args } = parseArgs({ options: { repeat: { type: 'string' }, out: { type: 'string' } } });
const repeat = Math.max(1, Number(args.repeat ?? 5));
const LOOKUPS = 20_000;
const PAGE = 4096;

function fpOf(page: Buffer): Int32Array {
  const words = new Uint32Array(page.buffer, page.byteOffset, page.length >>> 2);
  const fp = new Int32Array(FP_WORDS);
  fingerprint(words, page, 0, page.length, fp);
  return fp;
}

/** CPU microseconds per lookup of `lookup(i)`, median of `repeat` runs of LOOKUPS each. */
function usPerLookup(lookup: (i: number) => void): number {
  const runs: number[] = [];
  for (let r = 0; r < repeat + 1; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < LOOKUPS; i++) lookup(i);
    const d = process.cpuUsage(t0);
    if (r > 0) runs.push((d.user + d.system) / LOOKUPS); // the first run warms up
  }
  runs.sort((a, b) => a - b);
  return runs[runs.length >> 1];
}

// Flood: 3000 different pages indexed under one forged fingerprint, looked up with yet other pages.
const flooded = new ContentCache(PAGE * 4096);
const forged = new Int32Array([0x1234, 0x5678]);
const page = Buffer.alloc(PAGE);
for (let i = 0; i < 3000; i++) {
  page.writeUInt32LE(i, PAGE - 4);
  flooded.insertKnown(page, 0, PAGE, forged);
}
const floodUs = usPerLookup((i) => { page.writeUInt32LE(100_000 + i, PAGE - 4); flooded.find(forged, page, 0, PAGE); });
const compares = flooded.compares / flooded.lookups;

// Ordinary content: distinct pages, each looked up once present (hit) and once absent (miss).
const ordinary = new ContentCache(PAGE * 4096);
const pages = Array.from({ length: 1024 }, (_, i) => { const p = Buffer.alloc(PAGE, i & 0xff); p.writeUInt32LE(i, 0); return p; });
const fps = pages.map(fpOf);
pages.forEach((p, i) => ordinary.insertKnown(p, 0, PAGE, fps[i]));
const hitUs = usPerLookup((i) => { ordinary.find(fps[i & 1023], pages[i & 1023], 0, PAGE); });
const absent = Buffer.alloc(PAGE, 0xee);
const absentFp = fpOf(absent);
const missUs = usPerLookup(() => { ordinary.find(absentFp, absent, 0, PAGE); });

const result = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, loadavg: os.loadavg() },
  repeat,
  lookupsPerRun: LOOKUPS,
  usPerLookup: { flood: floodUs, hit: hitUs, miss: missUs },
  comparesPerFloodLookup: compares,
};
console.log(`cache lookup, CPU us per lookup (median of ${repeat}): flood ${floodUs.toFixed(2)} (${compares} compares each), hit ${hitUs.toFixed(2)}, miss ${missUs.toFixed(2)}`);
const out = args.out ?? path.join(import.meta.dirname, 'results', 'cache-flood.json');
fs.writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
console.log(`wrote ${path.relative(process.cwd(), out)}`);
