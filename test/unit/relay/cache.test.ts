import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContentCache, digest } from '../../../src/relay/cache.ts';
import { Rng } from '../../../src/relay/synthetic.ts';

test('cache behaves like a FIFO map of digests under random inserts (probe chains survive deletion)', () => {
  const cache = new ContentCache(64 * 64, 64);
  assert.equal(cache.slots, 64);
  const rng = new Rng(11);
  const fifo: string[] = [];
  const content = new Map<string, Buffer>();
  const k = new Uint32Array(4);
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.alloc(4 + rng.int(61));
    // Few distinct contents so that lookups hit as well as miss.
    b.writeUInt32LE(rng.int(300), 0);
    digest(b, k);
    const id = Array.from(k).join(',');
    const slot = cache.find(k);
    assert.equal(slot >= 0, fifo.includes(id), `iteration ${i}`);
    if (slot >= 0) {
      assert.ok(cache.entry(slot).equals(content.get(id)!));
      continue;
    }
    cache.insert(b, 0, b.length, k);
    fifo.push(id);
    content.set(id, b);
    if (fifo.length > 64) fifo.shift();
  }
  assert.equal(cache.size, 64);
});

test('two caches fed the same inserts stay identical (lockstep)', () => {
  const a = new ContentCache(4096 * 32);
  const b = new ContentCache(4096 * 32);
  const rng = new Rng(5);
  const k = new Uint32Array(4);
  const page = Buffer.alloc(4096);
  for (let i = 0; i < 500; i++) {
    page.writeUInt32LE(rng.int(100), 0);
    digest(page, k);
    if (a.find(k) < 0) { a.insert(page, 0, 4096, k); b.insert(page, 0, 4096, k); }
    assert.equal(a.find(k), b.find(k));
  }
  assert.ok(a.slab.equals(b.slab));
});
