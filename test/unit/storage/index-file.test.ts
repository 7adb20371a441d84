import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE } from '../../../src/storage/extents.ts';
import { PageIndex, pageKey, ZERO_PAGE_KEY } from '../../../src/storage/index-file.ts';
import { digest } from '../../../src/relay/codec/index.ts';

test('page keys are the relay cache keys (first 128 bits of SHA-256)', () => {
  const page = crypto.randomBytes(PAGE);
  const words = new Uint32Array(4);
  digest(page, words);
  assert.deepEqual(pageKey(page), Buffer.from(words.buffer));
});

test('a zeroed index knows every page as zero; unknown pages match nothing', () => {
  const z = PageIndex.zeroed(8 * PAGE);
  assert.equal(z.knownPages(), 8);
  assert.ok(z.matches(5, ZERO_PAGE_KEY));
  const u = new PageIndex(8 * PAGE);
  assert.equal(u.knownPages(), 0);
  assert.ok(!u.matches(5, ZERO_PAGE_KEY));
  assert.throws(() => new PageIndex(PAGE + 1));
});

test('setFromData keys each page; forget makes it unknown', () => {
  const idx = PageIndex.zeroed(8 * PAGE);
  const data = crypto.randomBytes(2 * PAGE);
  idx.setFromData(2 * PAGE, data);
  assert.ok(idx.matches(2, pageKey(data.subarray(0, PAGE))));
  assert.ok(idx.matches(3, pageKey(data.subarray(PAGE))));
  assert.ok(idx.matches(4, ZERO_PAGE_KEY));
  idx.forget(3);
  assert.ok(!idx.known(3));
  assert.equal(idx.knownPages(), 7);
});

test('save/load round-trips atomically and rejects foreign files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-idx-'));
  try {
    const idx = PageIndex.zeroed(16 * PAGE);
    idx.setFromData(PAGE, crypto.randomBytes(PAGE));
    const path = join(dir, 'v.cnidx');
    idx.save(path);
    const back = PageIndex.load(path)!;
    assert.equal(back.volumeBytes, 16 * PAGE);
    assert.deepEqual(back.keys, idx.keys);
    assert.equal(PageIndex.load(join(dir, 'missing')), undefined);
    writeFileSync(path, 'garbage garbage garbage garbage');
    assert.throws(() => PageIndex.load(path), /not a cloudnet storage index/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
