import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alignExtents, chunks, extentBytes, mergeExtents, PAGE, PageSet } from '../../../src/storage/extents.ts';

test('mergeExtents sorts, merges overlapping and touching extents, drops empty ones', () => {
  assert.deepEqual(mergeExtents([{ offset: 100, length: 10 }, { offset: 0, length: 50 }, { offset: 50, length: 10 }, { offset: 5, length: 0 }, { offset: 105, length: 20 }]),
    [{ offset: 0, length: 60 }, { offset: 100, length: 25 }]);
  assert.deepEqual(mergeExtents([]), []);
});

test('mergeExtents does not modify its input', () => {
  const input = [{ offset: 0, length: 10 }, { offset: 5, length: 10 }];
  mergeExtents(input);
  assert.deepEqual(input, [{ offset: 0, length: 10 }, { offset: 5, length: 10 }]);
});

test('alignExtents widens to pages and clips to the volume', () => {
  assert.deepEqual(alignExtents([{ offset: 10, length: 5 }, { offset: 4096 * 3 - 1, length: 2 }], 4096 * 4),
    [{ offset: 0, length: 4096 }, { offset: 8192, length: 8192 }]);
  assert.deepEqual(alignExtents([{ offset: 4096 * 3, length: 1 << 20 }], 4096 * 4), [{ offset: 12288, length: 4096 }]);
});

test('chunks splits at aligned boundaries', () => {
  const out = [...chunks([{ offset: 1000, length: 200_000 }], 65536)];
  assert.equal(out[0].offset, 1000);
  assert.equal(out[0].length, 65536 - 1000);
  assert.ok(out.slice(1).every((c) => c.offset % 65536 === 0));
  assert.equal(extentBytes(out), 200_000);
});

test('PageSet: add, ranges, union, runs as extents', () => {
  const s = new PageSet(100);
  s.add(3); s.add(3); s.addRange(10, 13); s.add(99);
  assert.equal(s.size, 5);
  assert.deepEqual(s.list(), [3, 10, 11, 12, 99]);
  assert.deepEqual(s.toExtents(), [{ offset: 3 * PAGE, length: PAGE }, { offset: 10 * PAGE, length: 3 * PAGE }, { offset: 99 * PAGE, length: PAGE }]);
  const t = PageSet.ofExtents(100, [{ offset: 4 * PAGE - 1, length: 2 }]);
  assert.deepEqual(t.list(), [3, 4]);
  s.union(t);
  s.delete(10);
  assert.deepEqual(s.list(), [3, 4, 11, 12, 99]);
  assert.throws(() => s.add(100), RangeError);
});
