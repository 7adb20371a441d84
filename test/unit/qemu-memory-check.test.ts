import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkGuestRam } from '../../src/qemu/memory-check.ts';

test('checkGuestRam finds exactly the differing pages across read chunks, and repair makes the files equal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudnet-memcheck-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pages = 3000; // more than one 1024-page read chunk, and a partial last chunk
  const a = Buffer.alloc(pages * 4096);
  for (let i = 0; i < a.length; i += 7) a[i] = i & 0xff;
  const b = Buffer.from(a);
  const changed = [0, 1023, 1024, 2999];
  for (const p of changed) b[p * 4096 + 4095] ^= 0x5a;
  const src = join(dir, 'src.ram');
  const dst = join(dir, 'dst.ram');
  writeFileSync(src, a);
  writeFileSync(dst, b);

  const seen = await checkGuestRam(src, dst);
  assert.equal(seen.pages, pages);
  assert.equal(seen.mismatchCount, changed.length);
  assert.deepEqual(seen.mismatched, changed);
  assert.equal(seen.repaired, 0);
  assert.ok(!readFileSync(dst).equals(a), 'a check alone must not write');

  const fixed = await checkGuestRam(src, dst, { repair: true });
  assert.equal(fixed.repaired, changed.length);
  assert.ok(readFileSync(dst).equals(a));
  assert.equal((await checkGuestRam(src, dst)).mismatchCount, 0);
});
