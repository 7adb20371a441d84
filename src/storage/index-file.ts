// The target's index of its own content: one 128-bit key per 4 KiB page (the first 16 bytes of the
// page's SHA-256, the same key the relay's seeded content uses), or all-zero bytes for "unknown".
// It is what makes resumption cheap (the source skips pages whose key already matches) and what
// a relay can seed its cache from (content the target already holds need not cross the WAN).
//
// Persistence: the whole index is rewritten atomically (temp file, fsync, rename) after the data
// file was fdatasync'ed, so a persisted key always describes bytes that are durable on disk.
import crypto from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PAGE, pagesOf } from './extents.ts';

export const KEY_BYTES = 16;
const MAGIC = Buffer.from('CNSIDX01', 'latin1');
const HEADER = 24; // magic, u64 volume bytes, u32 page size, u32 reserved

export function pageKey(page: Uint8Array): Buffer {
  return crypto.hash('sha256', page, 'buffer').subarray(0, KEY_BYTES);
}

export const ZERO_PAGE_KEY: Buffer = pageKey(new Uint8Array(PAGE));
const UNKNOWN = Buffer.alloc(KEY_BYTES);

export function isZero(buf: Uint8Array, start = 0, end = buf.length): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

export class PageIndex {
  readonly volumeBytes: number;
  readonly pages: number;
  readonly keys: Buffer;

  constructor(volumeBytes: number, keys?: Buffer) {
    if (volumeBytes % PAGE !== 0) throw new Error(`volume size ${volumeBytes} is not a multiple of ${PAGE}`);
    this.volumeBytes = volumeBytes;
    this.pages = pagesOf(volumeBytes);
    if (keys && keys.length !== this.pages * KEY_BYTES) throw new Error(`index has ${keys.length} bytes, want ${this.pages * KEY_BYTES}`);
    this.keys = keys ?? Buffer.alloc(this.pages * KEY_BYTES);
  }

  /** An index for a fresh, all-zero volume: every page is known to be zero. */
  static zeroed(volumeBytes: number): PageIndex {
    const idx = new PageIndex(volumeBytes);
    for (let p = 0; p < idx.pages; p++) ZERO_PAGE_KEY.copy(idx.keys, p * KEY_BYTES);
    return idx;
  }

  key(p: number): Buffer {
    return this.keys.subarray(p * KEY_BYTES, (p + 1) * KEY_BYTES);
  }

  known(p: number): boolean {
    return !this.key(p).equals(UNKNOWN);
  }

  matches(p: number, key: Uint8Array): boolean {
    return this.key(p).equals(key);
  }

  set(p: number, key: Uint8Array): void {
    this.keys.set(key.subarray(0, KEY_BYTES), p * KEY_BYTES);
  }

  forget(p: number): void {
    UNKNOWN.copy(this.keys, p * KEY_BYTES);
  }

  /** Sets the keys of pages covered by `data` written at byte `offset` (page aligned). */
  setFromData(offset: number, data: Uint8Array): void {
    const first = offset / PAGE;
    for (let i = 0; i * PAGE < data.length; i++) this.set(first + i, pageKey(data.subarray(i * PAGE, (i + 1) * PAGE)));
  }

  knownPages(): number {
    let n = 0;
    for (let p = 0; p < this.pages; p++) if (this.known(p)) n++;
    return n;
  }

  serialize(): Buffer {
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h, 0);
    h.writeBigUInt64LE(BigInt(this.volumeBytes), 8);
    h.writeUInt32LE(PAGE, 16);
    return Buffer.concat([h, this.keys]);
  }

  static parse(buf: Buffer): PageIndex {
    if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) throw new Error('not a cloudnet storage index');
    if (buf.readUInt32LE(16) !== PAGE) throw new Error(`index page size ${buf.readUInt32LE(16)} is not ${PAGE}`);
    return new PageIndex(Number(buf.readBigUInt64LE(8)), Buffer.from(buf.subarray(HEADER)));
  }

  /** Atomic replace: readers see the old or the new index, never a torn one. */
  save(path: string): void {
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, this.serialize());
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }

  static load(path: string): PageIndex | undefined {
    if (!existsSync(path)) return undefined;
    return PageIndex.parse(readFileSync(path));
  }
}
