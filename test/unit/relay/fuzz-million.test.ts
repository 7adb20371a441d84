// The bar for the relay's stream formats: 10^6 damaged encoded files, decoded in-process as
// `cloudnet relay decode` does, with zero silent corruptions. Damage (file-damage.ts): every bit of
// the smallest files flipped one at a time, random byte corruption, dropped, repeated and swapped
// frames, frames dropped or repeated with recomputed CRCs (only the file structure can tell), and
// truncation at every frame boundary of every file. RELAY_FILE_FUZZ_MILLION sets the count; the
// output reports the count run and what caught each damaged file. (No time limit is asserted: the
// run takes about 20 CPU-seconds here, see the reported time.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCorpus, formatReport, runDamage } from './file-damage.ts';

const CASES = Number(process.env.RELAY_FILE_FUZZ_MILLION ?? 1_000_000);

test(`${CASES} damaged relay files: each is a named error or the original streams, never other output`, () => {
  const t0 = performance.now();
  const corpus = buildCorpus(64, 20251206);
  const r = runDamage(corpus, CASES, 1);
  console.log(formatReport(r, performance.now() - t0));
  assert.equal(r.cases, CASES);
  assert.equal(r.harmless, 0, 'no damage leaves a file decodable');
  if (CASES >= 100_000) {
    assert.ok(r.allBoundariesCut, 'every frame boundary of every file was cut');
    assert.ok(r.filesFullyFlipped >= 10, `every bit of at least 10 files flipped (${r.filesFullyFlipped})`);
  }
});
