// Property/fuzz test: decode(encode(x)) == x for random, adversarial (QEVM-like with garbage,
// truncation, repeated and edited pages, NBD-like) and mutated synthetic streams, encoded as
// consecutive sessions over one long-lived cache pair (small, so eviction is exercised), with
// random write sizes, idle flushes and stall flushes. RELAY_FUZZ_CASES sets the case count.
// Then damaged encoded files (flipped bits, dropped, repeated and swapped frames, truncation at
// every frame boundary, see file-damage.ts) must fail with a named error, never decode to other
// bytes: RELAY_FILE_FUZZ_CASES of them here, 10^6 in fuzz-million.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DecodeError, packBatch, SessionDecoder, SessionEncoder, unpackBatch, type StreamMode } from '../../../src/relay/codec/index.ts';
import { Rng, syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { buildCorpus, formatReport, runDamage } from './file-damage.ts';
import { craftedQevm, mutate, nbdLike } from './fuzz-inputs.ts';
import { pair, roundTrip } from './helpers.ts';

const CASES = Number(process.env.RELAY_FUZZ_CASES ?? 100_000);

function recordedStreams(): Buffer[] {
  const dir = path.join(process.env.CLOUDNET_CACHE ?? path.resolve('.cache'), 'streams');
  if (!fs.existsSync(dir)) return [];
  // The first 4 MiB of each (header, RAM setup, first-round pages) is plenty for mutations.
  return fs.readdirSync(dir).filter((f) => f.endsWith('.qemu')).slice(0, 4).map((f) => {
    const fd = fs.openSync(path.join(dir, f), 'r');
    try {
      const b = Buffer.alloc(4 << 20);
      return b.subarray(0, fs.readSync(fd, b, 0, b.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  });
}

test(`decode(encode(x)) == x on ${CASES} random, adversarial and mutated streams`, () => {
  const rng = new Rng(Number(process.env.RELAY_FUZZ_SEED ?? 12345));
  const pool: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const p = Buffer.alloc(4096, i % 3 === 0 ? 0 : 0x41 + i);
    if (i % 4 === 1) rng.fill(p);
    pool.push(p);
  }
  const synthetic = [1, 2, 3].map((seed) => syntheticQemuStream({ seed, pages: 48, rounds: 3, dirtyFraction: 0.3 }));
  const recorded = recordedStreams();
  if (!recorded.length) console.log('# fuzz: no recorded streams in .cache/streams (npm run record:streams); synthetic only');
  let p = pair(48 * 4096);
  const counts = [0, 0, 0, 0, 0];
  for (let c = 0; c < CASES; c++) {
    if (c % 5000 === 4999) p = pair((16 + rng.int(64)) * 4096); // fresh pairs of varying size
    const kind = rng.int(recorded.length ? 5 : 4);
    let input: Buffer;
    let mode: StreamMode = 'auto';
    if (kind === 0) { input = Buffer.alloc(rng.int(3000)); rng.fill(input); mode = (['auto', 'generic', 'nbd', 'qevm'] as const)[rng.int(4)]; }
    else if (kind === 1) input = craftedQevm(rng, pool);
    else if (kind === 2) { input = nbdLike(rng, pool); mode = rng.int(2) ? 'nbd' : 'auto'; }
    else if (kind === 3) input = mutate(rng, synthetic[rng.int(synthetic.length)]);
    else input = mutate(rng, recorded[rng.int(recorded.length)]);
    counts[kind]++;
    const { output } = roundTrip(p, input, rng, mode, rng.int(3) === 0 ? 0 : 1, true);
    if (!output.equals(input)) {
      assert.fail(`case ${c} (kind ${kind}, ${input.length} bytes) differs; input hex head ${input.subarray(0, 64).toString('hex')}`);
    }
  }
  console.log(`# fuzz cases by kind (random, crafted QEVM, NBD-like, mutated synthetic, mutated recorded): ${counts.join(', ')}`);
});

test('concurrent sessions over one cache pair: random interleaving keeps the caches in lockstep', () => {
  const rng = new Rng(777);
  const pool: Buffer[] = [];
  for (let i = 0; i < 12; i++) { const p = Buffer.alloc(4096); rng.fill(p, 0, 64 + rng.int(4000)); pool.push(p); }
  const cases = Math.max(200, Math.floor(CASES / 100));
  for (let c = 0; c < cases; c++) {
    const p = pair((8 + rng.int(40)) * 4096); // small: eviction under concurrency
    const n = 2 + rng.int(3);
    const inputs = Array.from({ length: n }, (_, i) => (i % 2 ? craftedQevm(rng, pool) : mutate(rng, syntheticQemuStream({ seed: 1 + rng.int(3), pages: 24, rounds: 2 }))));
    const outs: Buffer[][] = inputs.map(() => []);
    const decs = inputs.map(() => new SessionDecoder(p.rx));
    // Frames reach the receiver in the order the encoders emit them, whatever the session.
    const encs = inputs.map((_, i) => new SessionEncoder(p.tx, (b) => {
      const u = unpackBatch(packBatch(b.ops, b.rawLen, 1, undefined, b.inserts));
      outs[i].push(decs[i].decode(u.ops, u.rawLen, undefined, u.inserts));
    }, { batchOpBytes: 512 + rng.int(16384) }));
    interleave(rng, inputs, encs);
    inputs.forEach((inp, i) => assert.ok(Buffer.concat(outs[i]).equals(inp), `case ${c} session ${i}`));
  }
});

/** Feeds the sessions' inputs to their encoders in random-sized pieces, interleaved at random
 *  across sessions, with random (sometimes final) flushes, then ends every encoder. */
function interleave(rng: Rng, inputs: Buffer[], encs: SessionEncoder[]): void {
  const offs = inputs.map(() => 0);
  while (offs.some((o, i) => o < inputs[i].length)) {
    const i = rng.int(inputs.length);
    if (offs[i] >= inputs[i].length) continue;
    const len = 1 + rng.int(6000);
    encs[i].write(inputs[i].subarray(offs[i], offs[i] + len));
    offs[i] += len;
    if (rng.int(10) === 0) encs[i].flush(rng.int(4) === 0);
  }
  encs.forEach((e) => e.end());
}

test('dropped batches (a session the receiver cannot decode) never yield wrong bytes in the other sessions', () => {
  const rng = new Rng(4242);
  const pool: Buffer[] = [];
  for (let i = 0; i < 12; i++) { const p = Buffer.alloc(4096); rng.fill(p, 0, 64 + rng.int(4000)); pool.push(p); }
  const cases = Math.max(200, Math.floor(CASES / 200));
  let exact = 0;
  let failed = 0;
  for (let c = 0; c < cases; c++) {
    const p = pair((8 + rng.int(40)) * 4096);
    const n = 2 + rng.int(3);
    const inputs = Array.from({ length: n }, (_, i) => (i % 2 ? craftedQevm(rng, pool) : mutate(rng, syntheticQemuStream({ seed: 1 + rng.int(3), pages: 24, rounds: 2 }))));
    const outs: Buffer[][] = inputs.map(() => []);
    const broken = inputs.map(() => false);
    const decs = inputs.map(() => new SessionDecoder(p.rx));
    const victim = rng.int(n); // its batches are dropped from a random point on, as after a corrupt frame
    const dropFrom = rng.int(4);
    let victimBatches = 0;
    const encs = inputs.map((_, i) => new SessionEncoder(p.tx, (b) => {
      const u = unpackBatch(packBatch(b.ops, b.rawLen, 1, undefined, b.inserts));
      if (i === victim && victimBatches++ >= dropFrom) broken[i] = true;
      if (broken[i]) { p.rx.cache.skip(u.inserts); return; }
      try {
        outs[i].push(decs[i].decode(u.ops, u.rawLen, undefined, u.inserts));
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        broken[i] = true;
      }
    }, { batchOpBytes: 512 + rng.int(16384) }));
    interleave(rng, inputs, encs);
    inputs.forEach((inp, i) => {
      const got = Buffer.concat(outs[i]);
      if (broken[i]) {
        assert.ok(inp.subarray(0, got.length).equals(got), `case ${c} session ${i}: a failed session's output is a prefix`);
        if (i !== victim) failed++;
      } else {
        assert.ok(got.equals(inp), `case ${c} session ${i}`);
        if (i !== victim) exact++;
      }
    });
  }
  console.log(`# other sessions: ${exact} byte-exact, ${failed} failed cleanly (they referenced dropped content)`);
  assert.ok(exact > failed, 'skipping keeps most other sessions decodable');
});

test('damaged relay files: every flipped bit, dropped, repeated or swapped frame and cut is a named error, never other output', () => {
  const cases = Number(process.env.RELAY_FILE_FUZZ_CASES ?? 20_000);
  const t0 = performance.now();
  const r = runDamage(buildCorpus(48, 7), cases, 8);
  console.log(formatReport(r, performance.now() - t0));
  assert.equal(r.cases, cases);
  assert.equal(r.harmless, 0, 'no damage leaves a file decodable');
  assert.ok(r.allBoundariesCut || cases < 20_000, 'every frame boundary of the corpus was cut');
});
