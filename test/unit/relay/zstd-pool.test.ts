// The sender's compression worker: each batch's frame decompresses to exactly that batch, answers
// come in submission order across levels, an incompressible batch comes back as a frame the caller
// will store, and batches pending when the worker goes away come back uncompressed (their ops
// intact, so the sender can send them stored and the lockstep cache stays aligned).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import test from 'node:test';
import zlib from 'node:zlib';
import { ZstdWorkerPool } from '../../../src/relay/transport/zstd-pool.ts';
import { SenderRelay } from '../../../src/relay/transport/index.ts';

function batch(seed: number, len: number, random: boolean): Buffer {
  const b = ZstdWorkerPool.sharedBuffer(len);
  if (random) crypto.randomFillSync(b);
  else for (let i = 0; i < len; i++) b[i] = (i * seed) % 251 < 40 ? seed : (i >> 9) & 0xff;
  return b;
}

test('one worker compresses batches in order; each frame decompresses to its batch', async () => {
  const pool = new ZstdWorkerPool(1);
  try {
    const inputs = [batch(3, 512 << 10, false), batch(5, 300_000, false), batch(7, 64 << 10, true), batch(9, 576 << 10, false)];
    const levels = [1, 3, 1, 6];
    const order: number[] = [];
    const frames = await Promise.all(inputs.map((ops, i) => new Promise<Buffer | undefined>((resolve) => {
      pool.compress(ops, levels[i], (frame, release) => {
        order.push(i);
        const copy = frame && Buffer.from(frame);
        release();
        resolve(copy);
      });
    })));
    assert.deepEqual(order, [0, 1, 2, 3]);
    for (const [i, f] of frames.entries()) {
      assert.ok(f, `batch ${i} compressed`);
      assert.ok(zlib.zstdDecompressSync(f).equals(inputs[i]), `batch ${i} round-trips`);
    }
    assert.ok(frames[0]!.length < inputs[0].length / 4, 'a repetitive batch shrinks');
    assert.ok(frames[2]!.length >= inputs[2].length, 'random data does not shrink (the sender stores it)');
    assert.ok(pool.cpuSeconds > 0, 'the worker reports its CPU time');
  } finally {
    await pool.close();
  }
});

test('with several threads every batch is answered once, with its own frame', async () => {
  const pool = new ZstdWorkerPool(3);
  try {
    const inputs = Array.from({ length: 12 }, (_, i) => batch(i + 2, (64 << 10) * (1 + (i % 5)), i % 4 === 3));
    const frames = await Promise.all(inputs.map((ops, i) => new Promise<Buffer | undefined>((resolve) => {
      pool.compress(ops, 1 + (i % 3), (frame, release) => {
        const copy = frame && Buffer.from(frame);
        release();
        resolve(copy);
      });
    })));
    for (const [i, f] of frames.entries()) assert.ok(f && zlib.zstdDecompressSync(f).equals(inputs[i]), `batch ${i} round-trips`);
  } finally {
    await pool.close();
  }
});

test('batches pending when the worker goes away come back uncompressed, their ops intact', async () => {
  const pool = new ZstdWorkerPool();
  const inputs = Array.from({ length: 6 }, (_, i) => batch(i + 2, 512 << 10, false));
  const copies = inputs.map((b) => Buffer.from(b));
  const answers: (Buffer | undefined)[] = [];
  const all = Promise.all(inputs.map((ops) => new Promise<void>((resolve) => {
    pool.compress(ops, 19, (frame, release) => { answers.push(frame); release(); resolve(); });
  })));
  await pool.close();
  await all;
  assert.equal(answers.length, inputs.length, 'every batch is answered once');
  assert.ok(answers.some((a) => a === undefined), 'batches in flight at close come back uncompressed');
  for (const [i, b] of inputs.entries()) assert.ok(b.equals(copies[i]), `batch ${i} unchanged`);
  // A pool that is closed compresses nothing more, and says so.
  assert.equal(pool.usable, false);
});

test('warm() starts every thread, each having compressed a sample, before any batch comes', async () => {
  const pool = new ZstdWorkerPool(2);
  try {
    assert.equal(pool.threadCount, 0);
    await pool.warm();
    assert.equal(pool.threadCount, 2);
    assert.ok(pool.cpuSeconds > 0, 'both threads answered');
  } finally {
    await pool.close();
  }
});

test('a sender relay has its compression thread running once start() returns (not on its first batch)', async () => {
  const sender = new SenderRelay({ listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't', mode: 'auto' }], peer: { host: '127.0.0.1', port: 9 }, security: { kind: 'plain-inside-wireguard' }, cacheBytes: 1 << 20 });
  try {
    await sender.start();
    const st = sender.stats() as { compression: { threads: number; cpuSeconds: number } };
    assert.ok(st.compression.threads >= 1, `threads ${st.compression.threads}`);
    assert.ok(st.compression.cpuSeconds > 0);
  } finally {
    await sender.stop();
  }
});
