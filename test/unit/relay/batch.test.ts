import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/relay/tools/index.ts';
import { BatchUnpacker, DecodeError, packBatch, unpackBatch, zstdCompress } from '../../../src/relay/codec/index.ts';

test('the unpacker (direct zstd into its reused buffer when enabled) agrees with unpackBatch', () => {
  const u = new BatchUnpacker();
  const rng = new Rng(1);
  for (let i = 0; i < 60; i++) {
    const ops = Buffer.alloc(rng.int(4) ? rng.int(70000) : rng.int(3 << 20));
    rng.fill(ops, 0, rng.int(ops.length + 1)); // a random prefix, then zeros: compressible
    const packed = packBatch(ops, ops.length + 7, 1 + rng.int(3), undefined, rng.int(50) - 1);
    const a = unpackBatch(packed);
    const b = u.unpack(packed);
    assert.ok(b.ops.equals(ops));
    assert.deepEqual([b.rawLen, b.inserts], [a.rawLen, a.inserts]);
  }
});

test('the unpacker rejects corrupt, truncated, too long and too short zstd payloads, and recovers', () => {
  const u = new BatchUnpacker();
  const ops = Buffer.alloc(100000, 'abcdefgh');
  const good = packBatch(ops, ops.length, 3, undefined, 5);
  const z = zstdCompress(ops, 3);
  const header = good.subarray(0, good.length - z.length);
  const bad = [
    Buffer.concat([header, z.subarray(0, z.length - 5)]), // truncated
    Buffer.concat([header, Buffer.alloc(60, 0x5a)]), // garbage
    Buffer.concat([header, z, Buffer.from([1, 2, 3])]), // trailing junk
    packBatch(ops, ops.length, 3, zstdCompress(Buffer.concat([ops, Buffer.from('x')]), 3), 5), // longer than announced
    packBatch(ops, ops.length, 3, zstdCompress(ops.subarray(1), 3), 5), // shorter than announced
  ];
  for (const [i, frame] of bad.entries()) {
    assert.throws(() => u.unpack(frame), (e: unknown) => e instanceof DecodeError && e.reason === 'corrupt', `case ${i}`);
    assert.ok(u.unpack(good).ops.equals(ops), `recovers after case ${i}`);
  }
});
