import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../../../src/relay/codec/index.ts';
import { createDecoder, createEncoder } from '../../../src/storage/codec.ts';
import { PAGE } from '../../../src/storage/extents.ts';
import { seedablePages, seedCache, seedReceiver } from '../../../src/storage/seed.ts';
import { Volume } from '../../../src/storage/volume.ts';
import * as P from '../../../src/storage/protocol.ts';

test('seeded caches turn a full NBD disk stream into references, in lockstep', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-seed-'));
  try {
    const src = join(dir, 'src.raw');
    const dst = join(dir, 'dst.raw');
    const disk = crypto.randomBytes(256 * PAGE);
    disk.fill(0, 100 * PAGE, 120 * PAGE);
    writeFileSync(src, disk);
    copyFileSync(src, dst);
    // The target misses the last 16 pages' current content.
    crypto.randomFillSync(disk, 240 * PAGE);
    writeFileSync(src, disk);
    const vol = new Volume(dst, disk.length);
    const index = vol.scanIndex();
    vol.close();
    const pages = seedablePages(src, index);
    assert.equal(pages.length, 256 - 20 - 16);
    const ctxS = createContext(4 << 20);
    const ctxT = createContext(4 << 20);
    assert.equal(seedCache(ctxS, src, pages), pages.length);
    assert.equal(seedCache(ctxT, dst, pages), pages.length);
    // KubeVirt-style: the whole disk as NBD writes of 64 KiB.
    const wire: Buffer[] = [];
    const enc = createEncoder('relay', (b) => wire.push(b), { context: ctxS });
    const raw: Buffer[] = [];
    for (let off = 0; off < disk.length; off += 16 * PAGE) {
      const r = P.encodeRequest({ flags: 0, type: P.CMD_WRITE, handle: BigInt(off), offset: off, length: 16 * PAGE }, disk.subarray(off, off + 16 * PAGE));
      raw.push(r);
      enc.write(r);
    }
    enc.flush();
    const dec = createDecoder('relay', { context: ctxT });
    assert.deepEqual(Buffer.concat(wire.flatMap((w) => dec.push(w))), Buffer.concat(raw));
    const wireBytes = wire.reduce((n, b) => n + b.length, 0);
    // Only the 16 changed random pages need literal bytes (the zero pages compress away).
    assert.ok(wireBytes < 20 * PAGE, `wire ${wireBytes} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('seedReceiver hands distinct, non-zero, indexed pages of the volume to a relay receiver', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-seed-'));
  try {
    const dst = join(dir, 'dst.raw');
    const disk = crypto.randomBytes(64 * PAGE);
    disk.fill(0, 0, 8 * PAGE); // zero pages: nothing to seed
    disk.copy(disk, 10 * PAGE, 20 * PAGE, 21 * PAGE); // a duplicate of page 20
    writeFileSync(dst, disk);
    const vol = new Volume(dst, disk.length);
    const index = vol.scanIndex();
    vol.close();
    index.forget(30); // unknown to the index: not announced
    const got: Buffer[] = [];
    const added = seedReceiver({ seed: (d) => { got.push(Buffer.from(d)); return { added: d.length / PAGE, full: false }; } }, dst, index, 16);
    assert.equal(added, 64 - 8 - 1 - 1);
    const all = Buffer.concat(got);
    assert.equal(all.length, added * PAGE);
    assert.deepEqual(all.subarray(0, PAGE), disk.subarray(8 * PAGE, 9 * PAGE));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
