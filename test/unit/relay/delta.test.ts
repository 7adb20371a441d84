import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDelta, encodeDelta } from '../../../src/relay/codec/delta.ts';
import { Rng } from '../../../src/relay/tools/index.ts';

function words(b: Buffer): Uint32Array {
  return new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
}

test('XOR/RLE delta round-trips random edits and stays small for small edits', () => {
  const rng = new Rng(7);
  for (let i = 0; i < 2000; i++) {
    const base = Buffer.alloc(4096);
    rng.fill(base);
    const cur = Buffer.alloc(4096);
    base.copy(cur);
    const edits = rng.int(6);
    let touched = 0;
    for (let e = 0; e < edits; e++) {
      const at = rng.int(4096);
      const n = Math.min(4096 - at, 1 + rng.int(40));
      for (let j = 0; j < n; j++) cur[at + j] = rng.next() & 0xff;
      touched += n;
    }
    const out = Buffer.alloc(4200);
    const len = encodeDelta(words(base), 0, base, 0, words(cur), cur, out, 0, 4096);
    assert.ok(len >= 0);
    assert.ok(len <= touched + edits * 4 * 3 + 16, `delta ${len} for ${touched} touched bytes`);
    const dst = Buffer.alloc(4096);
    assert.ok(applyDelta(base, out, 0, len, dst, 0, 4096));
    assert.ok(dst.equals(cur));
  }
});

test('delta of an identical page is empty; over the limit it gives up', () => {
  const a = Buffer.alloc(4096, 1);
  const out = Buffer.alloc(4200);
  assert.equal(encodeDelta(words(a), 0, a, 0, words(a), a, out, 0, 4096), 0);
  const b = Buffer.alloc(4096);
  new Rng(3).fill(b);
  assert.equal(encodeDelta(words(a), 0, a, 0, words(b), b, out, 0, 1000), -1);
});

test('malformed deltas are rejected, never applied out of bounds', () => {
  const base = Buffer.alloc(4096);
  const dst = Buffer.alloc(4096);
  assert.equal(applyDelta(base, Buffer.from([0x80, 0x40, 0x10, 1, 2]), 0, 5, dst, 0, 4096), false); // skip beyond page
  assert.equal(applyDelta(base, Buffer.from([0, 10, 1]), 0, 3, dst, 0, 4096), false); // truncated run
  assert.equal(applyDelta(base, Buffer.from([0, 0]), 0, 2, dst, 0, 4096), false); // empty run
  assert.equal(applyDelta(base, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), 0, 5, dst, 0, 4096), false);
});
