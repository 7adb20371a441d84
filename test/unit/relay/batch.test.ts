import { test } from 'node:test';
import zlib from 'node:zlib';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/relay/tools/index.ts';
import { BatchUnpacker, DecodeError, packBatch, unpackBatch, zstdCompress, zstdCompressView } from '../../../src/relay/codec/index.ts';

test('the unpacker (direct zstd into its reused buffer) agrees with unpackBatch', () => {
  const u = new BatchUnpacker();
  assert.ok(u.direct, 'direct zstd decompression is available on the project\'s Node');
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

const EMPTY_FRAME = Buffer.from('28b52ffd2000010000', 'hex'); // what zstd writes for no input

function asyncZstd(data: Buffer, level: number, chunkSize?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.zstdCompress(data, { chunkSize, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

// The live sender compresses with zlib.zstdCompress (thread pool, 16 KiB output chunks). When the
// compressed frame ends exactly at a chunk's end, Node calls zstd once more with ZSTD_e_end and it
// writes a second, empty frame: the cause of the "decompressed batch length mismatch" that closed
// sessions in long 4-VM runs (about one batch in 16 384) when the unpacker made one native call
// and saw input left over. The same Node code with 64-byte chunks makes it one batch in 64, so a
// few hundred batches reproduce it deterministically.
test('the unpacker takes the empty trailing frame that Node\'s async zstdCompress appends at a chunk boundary', async () => {
  const u = new BatchUnpacker();
  assert.ok(u.direct);
  const rng = new Rng(3);
  let twoFrames = 0;
  for (let i = 0; i < 400; i++) {
    const ops = Buffer.alloc(100 + rng.int(20000));
    rng.fill(ops, 0, rng.int(ops.length)); // a random prefix, then zeros: compressible
    const z = await asyncZstd(ops, 1 + rng.int(3), 64);
    const packed = packBatch(ops, ops.length, 1, z, i);
    if (z.length < ops.length && z.subarray(-EMPTY_FRAME.length).equals(EMPTY_FRAME)) twoFrames++;
    const b = u.unpack(packed);
    assert.ok(b.ops.equals(ops), `batch ${i}`);
    assert.equal(b.inserts, i);
  }
  assert.ok(twoFrames >= 2, `${twoFrames} batches ended in the empty frame`);
});

test('one unpacker, batches of interleaved sessions, some ending in the empty frame: every batch exact, junk still rejected', () => {
  const u = new BatchUnpacker();
  const rng = new Rng(11);
  const sessions = Array.from({ length: 4 }, (_, s) => Array.from({ length: 30 }, (_, i) => {
    const ops = Buffer.alloc(1 + rng.int(200000));
    rng.fill(ops, 0, rng.int(ops.length + 1));
    ops.fill(`session ${s} batch ${i} `, Math.floor(ops.length / 2));
    const z = zstdCompress(ops, 1 + 2 * (i % 2));
    const twoFrames = (s + i) % 3 === 0;
    return { ops, packed: packBatch(ops, ops.length, 1, twoFrames ? Buffer.concat([z, EMPTY_FRAME]) : z, i), twoFrames };
  }));
  for (let i = 0; i < 30; i++) {
    for (const batches of sessions) {
      const { ops, packed, twoFrames } = batches[i];
      const b = u.unpack(packed);
      assert.ok(b.ops.equals(ops), `batch ${i}${twoFrames ? ' (two frames)' : ''}`);
      assert.equal(b.inserts, i);
    }
  }
  const ops = Buffer.alloc(50000, 'xyz');
  const h = packBatch(ops, ops.length, 1, Buffer.concat([zstdCompress(ops, 1), EMPTY_FRAME]), 0);
  for (const junk of [Buffer.from([1, 2, 3]), EMPTY_FRAME.subarray(0, 7), Buffer.from('28b52ffd', 'hex'), zstdCompress(Buffer.from('x'), 1)]) {
    assert.throws(() => u.unpack(Buffer.concat([h, junk])), (e: unknown) => e instanceof DecodeError && e.reason === 'corrupt');
  }
  assert.ok(u.unpack(h).ops.equals(ops));
});

test('the kept compressors (one per level, reused output) make one whole frame per call, at every level and size', () => {
  const rng = new Rng(21);
  const u = new BatchUnpacker();
  const owned: { z: Buffer; ops: Buffer }[] = [];
  for (let i = 0; i < 80; i++) {
    const ops = Buffer.alloc(i % 9 === 0 ? rng.int(3 << 20) : rng.int(200000));
    rng.fill(ops, 0, rng.int(ops.length + 1)); // a random prefix, then zeros
    const level = [1, 3, 6, 1, 2][i % 5];
    const view = zstdCompressView(ops, level);
    assert.ok(zlib.zstdDecompressSync(view).equals(ops), `batch ${i} at level ${level}`);
    // One frame exactly: no empty frame behind it (see BatchUnpacker).
    assert.ok(!view.subarray(-EMPTY_FRAME.length).equals(EMPTY_FRAME) || ops.length === 0);
    assert.equal(zlib.zstdDecompressSync(view, { maxOutputLength: Math.max(ops.length, 1) }).length, ops.length);
    const packed = packBatch(ops, ops.length, level, undefined, i);
    assert.ok(u.unpack(packed).ops.equals(ops));
    if (i % 10 === 0) owned.push({ z: zstdCompress(ops, level), ops });
  }
  // zstdCompress returns a buffer of its own: later calls at the same level leave it intact.
  for (const { z, ops } of owned) assert.ok(zlib.zstdDecompressSync(z).equals(ops));
});
