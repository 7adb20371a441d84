import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareMemoryFiles } from '../../src/qemu/memory-check.ts';

test('compareMemoryFiles reports exactly the pages that differ, across read-chunk boundaries', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudnet-memcheck-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pages = 3000; // more than one 1024-page read chunk
  const a = Buffer.alloc(pages * 4096);
  for (let i = 0; i < a.length; i += 7) a[i] = i & 0xff;
  const b = Buffer.from(a);
  const changed = [0, 1023, 1024, 2999];
  for (const p of changed) b[p * 4096 + 4095] ^= 0x5a;
  writeFileSync(join(dir, 'a'), a);
  writeFileSync(join(dir, 'b'), b);
  const r = await compareMemoryFiles(join(dir, 'a'), join(dir, 'b'), 4096);
  assert.equal(r.pages, pages);
  assert.equal(r.mismatchCount, changed.length);
  assert.deepEqual(r.mismatched, changed);
  writeFileSync(join(dir, 'c'), a);
  assert.equal((await compareMemoryFiles(join(dir, 'a'), join(dir, 'c'), 4096)).mismatchCount, 0);
});
