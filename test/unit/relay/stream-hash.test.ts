// The --hash-streams check hashes on a worker thread: its digest must be the plain SHA-256 of the
// stream, whatever the chunking, with several streams interleaved, and for an empty stream.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
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

test('the worker hands its blocks back for reuse and runs at the lowest CPU priority', async () => {
  const pool = new StreamHashPool();
  try {
    const first = crypto.randomBytes(3 * (1 << 20) + 5);
    const h1 = pool.open();
    h1.update(first);
    assert.equal(await h1.digest(), sha(first));
    const blocks = pool.blockCount;
    assert.equal(blocks, 4, 'three full blocks and a partial one');
    // Every block came back (the worker frees a block before it answers a digest), so a second
    // stream of the same size takes no new memory.
    const second = crypto.randomBytes(3 * (1 << 20) + 5);
    const h2 = pool.open();
    h2.update(second);
    assert.equal(await h2.digest(), sha(second));
    assert.equal(pool.blockCount, blocks);
    // The hashing thread is niced to 19 (Linux: /proc/self/task/<tid>/stat, field 19).
    const nices = fs.readdirSync('/proc/self/task').map((tid) => {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    });
    assert.ok(nices.includes(19), `a thread at nice 19 among ${JSON.stringify(nices)}`);
    assert.equal(os.getPriority(), 0, 'the relay\'s own thread keeps its priority');
  } finally {
    await pool.close();
  }
});
