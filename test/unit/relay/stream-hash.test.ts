// The --hash-streams check hashes in place, as the bytes pass: its digest must be the plain
// SHA-256 of the stream, whatever the chunking, with several streams interleaved, with the
// caller reusing its chunk buffer at once, and for an empty stream; its CPU is accounted apart.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import test from 'node:test';
import { StreamHashPool } from '../../../src/relay/transport/stream-hash.ts';

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

test('stream hashes equal SHA-256 of each stream, interleaved and from a reused chunk buffer', () => {
  const pool = new StreamHashPool();
  const data = [crypto.randomBytes(3 * (1 << 20) + 12345), crypto.randomBytes(70_000), Buffer.alloc(0)];
  const hashes = data.map(() => pool.open());
  // One reused chunk buffer, as a socket read into a fixed buffer would give.
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
