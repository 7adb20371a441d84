// The --hash-streams check hashes in place, as the bytes pass: its digest must be the plain
// SHA-256 of the stream, whatever the chunking, with several streams interleaved, with the
// caller reusing its chunk buffer at once, and for an empty stream; its CPU is accounted apart.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import test from 'node:test';
import { StreamHashPool, type StreamHash } from '../../../src/relay/transport/stream-hash.ts';

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

/**
 * Streams fed interleaved through one reused chunk buffer, as socket reads into a fixed buffer
 * would give them (the buffer is overwritten as soon as a chunk is handed over); returns the hashes.
 */
function interleaved(pool: StreamHashPool, data: Buffer[]): StreamHash[] {
  const hashes = data.map(() => pool.open());
  const chunk = Buffer.alloc(65_536 + 7);
  const offsets = data.map(() => 0);
  for (let more = true; more;) {
    more = false;
    for (const [i, d] of data.entries()) {
      if (offsets[i] >= d.length) continue;
      const n = d.copy(chunk, 0, offsets[i], Math.min(d.length, offsets[i] + chunk.length));
      hashes[i].update(chunk.subarray(0, n));
      chunk.fill(0xa5); // the caller reuses its buffer at once
      offsets[i] += n;
      more = true;
    }
  }
  return hashes;
}

test('stream hashes equal SHA-256 of each stream, interleaved and from a reused chunk buffer', () => {
  const data = [crypto.randomBytes(3 * (1 << 20) + 12345), crypto.randomBytes(70_000), Buffer.alloc(0)];
  const hashes = interleaved(new StreamHashPool(), data);
  assert.deepEqual(hashes.map((h) => h.digest()), data.map(sha));
  // The digest is kept: asking again gives the same, and a finished hash takes no more bytes.
  assert.equal(hashes[0].digest(), sha(data[0]));
  assert.throws(() => hashes[0].update(Buffer.from('more')), /already finished/);
});

test('the hashing CPU is accounted to the pool, apart from the relay\'s own work', () => {
  const pool = new StreamHashPool();
  assert.equal(pool.cpuSeconds, 0);
  const h = pool.open();
  const block = crypto.randomBytes(1 << 20);
  for (let i = 0; i < 64; i++) h.update(block);
  h.digest();
  // 64 MiB of SHA-256 cannot take zero CPU time; how much is the machine's business.
  assert.ok(pool.cpuSeconds > 0, `cpuSeconds ${pool.cpuSeconds}`);
});

test('deferred (a buffer): the bytes are copied as they pass and hashed at digest(); the buffer is free again after', () => {
  const pool = new StreamHashPool(8 << 20);
  assert.equal(pool.deferred, true);
  assert.equal(pool.freeBytes, 8 << 20);
  const h = pool.open();
  const data = crypto.randomBytes(3 * (1 << 20) + 999);
  const chunk = Buffer.alloc(50_000);
  for (let o = 0; o < data.length; o += chunk.length) {
    const n = data.copy(chunk, 0, o, Math.min(data.length, o + chunk.length));
    h.update(chunk.subarray(0, n));
    chunk.fill(0x5a); // the caller reuses its buffer at once: the check kept a copy
  }
  assert.equal(pool.freeBytes, 4 << 20, 'four 1 MiB blocks hold the 3 MiB and change');
  assert.equal(h.digest(), sha(data));
  assert.equal(pool.freeBytes, 8 << 20);
});

test('deferred: streams that outgrow the buffer, interleaved, still hash exactly', () => {
  // 2 MiB of buffer for three streams of 3 MiB, 5 MiB and 64 KiB: each hashes what it holds when
  // none is left, and goes on in place when the others hold it all.
  const pool = new StreamHashPool(2 << 20);
  const data = [crypto.randomBytes(3 << 20), crypto.randomBytes(5 << 20), crypto.randomBytes(65_536)];
  assert.deepEqual(interleaved(pool, data).map((h) => h.digest()), data.map(sha));
  assert.equal(pool.freeBytes, 2 << 20);
});

test('deferred: a stream given up (its session failed) gives its share of the buffer back', () => {
  const pool = new StreamHashPool(2 << 20);
  const dropped = pool.open();
  dropped.update(crypto.randomBytes(1_500_000));
  assert.equal(pool.freeBytes, 0);
  dropped.release();
  assert.equal(pool.freeBytes, 2 << 20);
  const data = crypto.randomBytes(1_800_000);
  const h = pool.open();
  h.update(data);
  assert.equal(pool.freeBytes, 0);
  assert.equal(h.digest(), sha(data));
});
