// Adaptive shedding (adaptive.ts): the sender lowers its work per page while its CPU is the
// bottleneck (zstd level, then stored, then no deltas, then pages passed through unhashed) and
// takes it back when the link is the bottleneck. Whatever the mode, and however often it changes
// in the middle of a stream, both caches stay in lockstep and the output is byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveLevel, EFFORT_FULL, EFFORT_PASS, packBatch, SessionDecoder, SessionEncoder, STEPS, T_DEDUP, T_DELTA, unpackBatch } from '../../../src/relay/codec/index.ts';
import { Rng, syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { pair } from './helpers.ts';

test('CPU-bound: the ladder steps down to pass-through; link-bound: back up to zstd-6; a fixed level never moves', () => {
  const a = new AdaptiveLevel('auto');
  assert.equal(a.mode, 'zstd-3');
  const seen = [a.mode];
  for (let i = 0; i < 20; i++) { a.feedback(false, true); if (seen.at(-1) !== a.mode) seen.push(a.mode); }
  assert.deepEqual(seen, ['zstd-3', 'zstd-1', 'stored', 'pass-through']);
  assert.equal(a.effort, EFFORT_PASS);
  assert.equal(a.level, 0);
  assert.equal(a.stepsDown, 3);
  // One busy period alone does not shed (a burst); both busy (or neither) holds the step.
  const b = new AdaptiveLevel('auto');
  b.feedback(false, true); b.feedback(true, true); b.feedback(false, true);
  assert.equal(b.mode, 'zstd-3');
  for (let i = 0; i < 10; i++) a.feedback(true, false);
  assert.equal(a.mode, STEPS.at(-1)!.mode);
  assert.equal(a.effort, EFFORT_FULL);
  const f = new AdaptiveLevel(1);
  for (let i = 0; i < 10; i++) f.feedback(false, true);
  assert.equal(f.level, 1);
  assert.equal(f.effort, EFFORT_FULL);
});

test('the probed link capacity picks the first step, until feedback has moved the policy; a fixed level ignores it', () => {
  const at = (bytesPerSec: number): string => { const a = new AdaptiveLevel('auto'); a.startFor(bytesPerSec); return a.mode; };
  assert.equal(at(300e6), 'stored'); // 2.4 Gbit/s: deduplicated and delta-encoded, no zstd
  assert.equal(at(125e6), 'zstd-1'); // 1 Gbit/s: zstd-1 on the compression thread
  assert.equal(at(30e6), 'zstd-1');
  assert.equal(at(12.5e6), 'zstd-3'); // 100 Mbit/s: the default
  const moved = new AdaptiveLevel('auto');
  moved.feedback(true, false);
  moved.startFor(125e6);
  assert.equal(moved.mode, 'zstd-6', 'feedback already spoke: the probe does not override it');
  // A slow link: CPU-bound feedback sheds no further than zstd-1 (more bytes would not pass the link).
  const slow = new AdaptiveLevel('auto');
  slow.startFor(5e6);
  for (let i = 0; i < 20; i++) slow.feedback(false, true);
  assert.equal(slow.mode, 'zstd-1');
  // So does a 1 Gbit/s one: below zstd-1 the relay only adds bytes (adaptive.ts, startFor).
  const gbit = new AdaptiveLevel('auto');
  gbit.startFor(125e6);
  for (let i = 0; i < 20; i++) gbit.feedback(false, true);
  assert.equal(gbit.mode, 'zstd-1');
  assert.equal(gbit.downIsPassThrough, false);
  const shedEarly = new AdaptiveLevel('auto');
  for (let i = 0; i < 20; i++) shedEarly.feedback(false, true);
  shedEarly.startFor(5e6);
  assert.equal(shedEarly.mode, 'zstd-1', 'a probe that finds a slow link lifts a policy already shed below the floor');
  // The sender holds stored batches when the stream already nears the link's rate: it asks
  // whether the next step down is pass-through.
  const fast = new AdaptiveLevel('auto');
  fast.startFor(300e6);
  assert.equal(fast.downIsPassThrough, true);
  fast.feedback(true, false);
  assert.equal(fast.mode, 'zstd-1');
  assert.equal(fast.downIsPassThrough, false);
  assert.equal(slow.downIsPassThrough, false, 'the floor: no step down at all');
  const fixed = new AdaptiveLevel(3);
  fixed.startFor(125e6);
  assert.equal(fixed.downIsPassThrough, false);
  assert.equal(fixed.mode, 'zstd-3');
  assert.equal(fixed.effort, EFFORT_FULL);
});

function run(input: Buffer, effortAt: (batch: number) => number, seed: number): { output: Buffer; enc: SessionEncoder } {
  const p = pair(8 << 20);
  const rng = new Rng(seed);
  const dec = new SessionDecoder(p.rx);
  const out: Buffer[] = [];
  let batch = 0;
  const enc: SessionEncoder = new SessionEncoder(p.tx, (b) => {
    const packed = packBatch(b.ops, b.rawLen, batch % 2, undefined, b.inserts);
    const u = unpackBatch(packed);
    out.push(Buffer.from(dec.decode(u.ops, u.rawLen, undefined, u.inserts)));
    batch++;
    enc.setEffort(effortAt(batch), `mode-${effortAt(batch)}`);
  }, { batchOpBytes: 4096 + rng.int(32768) });
  enc.setEffort(effortAt(0), `mode-${effortAt(0)}`);
  for (let off = 0; off < input.length;) {
    const n = 1 + rng.int(9000);
    enc.write(input.subarray(off, off + n));
    off += n;
  }
  enc.end();
  return { output: Buffer.concat(out), enc };
}

test('every mode, and modes changing from batch to batch, stay byte-exact and in lockstep', () => {
  const input = syntheticQemuStream({ seed: 11, pages: 800, rounds: 4 });
  const modes = [EFFORT_PASS, EFFORT_FULL];
  for (const m of modes) {
    const { output, enc } = run(input, () => m, m + 1);
    assert.ok(output.equals(input), `effort ${m}`);
    if (m === EFFORT_PASS) assert.equal(enc.stats.cacheLookups, 0, 'pass-through hashes nothing');
    if (m === EFFORT_FULL) assert.ok(enc.stats.count[T_DELTA] > 0 && enc.stats.count[T_DEDUP] > 0);
  }
  for (let seed = 1; seed <= 6; seed++) {
    const r = new Rng(seed * 7);
    const plan = Array.from({ length: 4096 }, () => modes[r.int(modes.length)]);
    const { output, enc } = run(input, (b) => plan[b % plan.length], seed);
    assert.ok(output.equals(input), `seed ${seed}`);
    // Each round says how much of it went in which mode.
    const rounds = enc.stats.rounds;
    assert.equal(rounds.length, 4);
    for (const round of rounds) assert.equal(Object.values(round.modes).reduce((x, y) => x + y, 0), round.rawBytes);
    assert.ok(rounds.some((round) => Object.keys(round.modes).length > 1));
  }
});
