// Content held outside the lockstep cache, addressed by the first 128 bits of its SHA-256: the
// receiver's seeds (content the target site already holds, e.g. disk blocks of the storage
// pre-copy). Its digests are announced to the sender, which then sends matching pages as
// references by digest. Never evicted (seeding stops when full); nothing is allocated per entry.
import { DIGEST_WORDS, probeTable } from './cache.ts';

export class DigestStore {
  readonly slots: number;
  readonly slotSize: number;
  readonly slab: Buffer;
  /** 4 digest words per slot. */
  private readonly keys: Uint32Array;
  private readonly lengths: Uint32Array;
  /** Open-addressing table of slot+1 (0 = empty), linear probing, at most half full. */
  private readonly table: Int32Array;
  private readonly mask: number;
  size = 0;

  constructor(bytes: number, slotSize = 4096) {
    this.slotSize = slotSize;
    this.slots = Math.max(16, Math.floor(bytes / slotSize));
    this.slab = Buffer.allocUnsafeSlow(this.slots * slotSize).fill(0);
    this.keys = new Uint32Array(this.slots * DIGEST_WORDS);
    this.lengths = new Uint32Array(this.slots);
    this.table = probeTable(this.slots);
    this.mask = this.table.length - 1;
  }

  get full(): boolean {
    return this.size === this.slots;
  }

  get memoryBytes(): number {
    return this.slab.length + this.keys.byteLength + this.lengths.byteLength + this.table.byteLength;
  }

  /** Calls fn with each stored digest (4 words, reused array). */
  forEachKey(fn: (k: Uint32Array) => void): void {
    const k = new Uint32Array(DIGEST_WORDS);
    for (let slot = 0; slot < this.size; slot++) {
      k.set(this.keys.subarray(slot * DIGEST_WORDS, slot * DIGEST_WORDS + DIGEST_WORDS));
      fn(k);
    }
  }

  /** Slot holding content with this digest, or -1. */
  find(k: Uint32Array): number {
    let i = k[0] & this.mask;
    for (;;) {
      const v = this.table[i];
      if (v === 0) return -1;
      const o = (v - 1) * DIGEST_WORDS;
      if (this.keys[o] === k[0] && this.keys[o + 1] === k[1] && this.keys[o + 2] === k[2] && this.keys[o + 3] === k[3]) return v - 1;
      i = (i + 1) & this.mask;
    }
  }

  length(slot: number): number {
    return this.lengths[slot];
  }

  slotOffset(slot: number): number {
    return slot * this.slotSize;
  }

  /** Stores content (length <= slotSize) whose digest is `k`; -1 when full. */
  insert(src: Uint8Array, start: number, end: number, k: Uint32Array): number {
    if (this.full) return -1;
    const slot = this.size++;
    this.keys.set(k.subarray(0, DIGEST_WORDS), slot * DIGEST_WORDS);
    this.lengths[slot] = end - start;
    this.slab.set(src.subarray(start, end), slot * this.slotSize);
    let i = k[0] & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
    return slot;
  }
}
