// The --hash-streams check hashes on a worker thread: its digest must be the plain SHA-256 of the
// stream, whatever the chunking, with several streams interleaved, and for an empty stream.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import test from 'node:test';
import { StreamHashPool } from '../../../src/relay/transport/stream-hash.ts';

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

test('stream hashes on the worker equal SHA-256 of each stream, interleaved and reused chunks', async () => {
  const pool = new StreamHashPool();
  try {
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
    const got = await Promise.all(hashes.map((h) => h.digest()));
    assert.deepEqual(got, data.map(sha));
    assert.ok(pool.cpuSeconds >= 0);
  } finally {
    await pool.close();
  }
});
