// Content cache shared by all sessions of one relay pair. Entries are pages/blocks/chunks of at
// most `slotSize` bytes, keyed by the first 128 bits of their SHA-256. Memory is one slab of
// `slots * slotSize` bytes plus small typed arrays; nothing is allocated per entry.
//
// Lockstep: both relays insert the same contents in the same order (driven by the op stream), and
// evict FIFO with the same capacity, so the sender knows what the receiver holds without extra
// messages. Because every reference names a strong hash and the receiver computes that hash from
// the bytes it holds, a desynchronised cache can only cause a miss (a clean session error), never
// wrong bytes. If the receiver skips inserts (a corrupt frame), its FIFO evicts later, so it still
// holds a superset of what the sender may refer to. See README.md for the collision argument.
import crypto from 'node:crypto';

export const DIGEST_WORDS = 4; // 128 bits

export function digest(data: Uint8Array, out: Uint32Array): void {
  const d = crypto.hash('sha256', data, 'buffer');
  out[0] = d.readUInt32LE(0);
  out[1] = d.readUInt32LE(4);
  out[2] = d.readUInt32LE(8);
  out[3] = d.readUInt32LE(12);
}

export class ContentCache {
  readonly slots: number;
  readonly slotSize: number;
  readonly slab: Buffer;
  /** 4 digest words per slot. */
  private readonly keys: Uint32Array;
  private readonly lengths: Uint32Array;
  private readonly used: Uint8Array;
  /** Open-addressing table of slot+1 (0 = empty), linear probing, at most half full. */
  private readonly table: Int32Array;
  private readonly mask: number;
  private next = 0;
  size = 0;
  inserts = 0;
  evictions = 0;

  constructor(bytes: number, slotSize = 4096) {
    this.slotSize = slotSize;
    this.slots = Math.max(16, Math.floor(bytes / slotSize));
    // Touch every page now: the configured bound is resident from the start, and the hot path
    // does not pay first-touch page faults (measured: ~2 us of system time per 4 KiB insert).
    this.slab = Buffer.allocUnsafeSlow(this.slots * slotSize).fill(0);
    this.keys = new Uint32Array(this.slots * DIGEST_WORDS);
    this.lengths = new Uint32Array(this.slots);
    this.used = new Uint8Array(this.slots);
    let t = 1;
    while (t < this.slots * 2) t <<= 1;
    this.table = new Int32Array(t);
    this.mask = t - 1;
  }

  get full(): boolean {
    return this.size === this.slots;
  }

  /** Calls fn with each stored digest (4 words, reused array). */
  forEachKey(fn: (k: Uint32Array) => void): void {
    const k = new Uint32Array(DIGEST_WORDS);
    for (let slot = 0; slot < this.slots; slot++) {
      if (!this.used[slot]) continue;
      k.set(this.keys.subarray(slot * DIGEST_WORDS, slot * DIGEST_WORDS + DIGEST_WORDS));
      fn(k);
    }
  }

  get memoryBytes(): number {
    return this.slab.length + this.keys.byteLength + this.lengths.byteLength + this.table.byteLength + this.used.length;
  }

  private matches(slot: number, k: Uint32Array): boolean {
    const o = slot * DIGEST_WORDS;
    return this.keys[o] === k[0] && this.keys[o + 1] === k[1] && this.keys[o + 2] === k[2] && this.keys[o + 3] === k[3];
  }

  /** Slot holding content with this digest, or -1. */
  find(k: Uint32Array): number {
    let i = k[0] & this.mask;
    for (;;) {
      const v = this.table[i];
      if (v === 0) return -1;
      if (this.matches(v - 1, k)) return v - 1;
      i = (i + 1) & this.mask;
    }
  }

  entry(slot: number): Buffer {
    const o = slot * this.slotSize;
    return this.slab.subarray(o, o + this.lengths[slot]);
  }

  length(slot: number): number {
    return this.lengths[slot];
  }

  slotOffset(slot: number): number {
    return slot * this.slotSize;
  }

  /** Inserts content (length <= slotSize) whose digest is `k`, evicting the oldest entry. */
  insert(src: Uint8Array, start: number, end: number, k: Uint32Array): number {
    const slot = this.next;
    this.next = this.next + 1 === this.slots ? 0 : this.next + 1;
    if (this.used[slot]) {
      this.remove(slot);
      this.evictions++;
    } else {
      this.size++;
    }
    this.used[slot] = 1;
    const o = slot * DIGEST_WORDS;
    this.keys[o] = k[0]; this.keys[o + 1] = k[1]; this.keys[o + 2] = k[2]; this.keys[o + 3] = k[3];
    this.lengths[slot] = end - start;
    this.slab.set(src.subarray(start, end), slot * this.slotSize);
    let i = k[0] & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
    this.inserts++;
    return slot;
  }

  /** Removes a slot's key from the table (backward-shift deletion keeps probe chains intact). */
  private remove(slot: number): void {
    const o = slot * DIGEST_WORDS;
    let i = this.keys[o] & this.mask;
    while (this.table[i] !== slot + 1) {
      if (this.table[i] === 0) return;
      i = (i + 1) & this.mask;
    }
    let hole = i;
    let j = (i + 1) & this.mask;
    while (this.table[j] !== 0) {
      const s = this.table[j] - 1;
      const home = this.keys[s * DIGEST_WORDS] & this.mask;
      // Move j into the hole when its home is not cyclically within (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        this.table[hole] = this.table[j];
        hole = j;
      }
      j = (j + 1) & this.mask;
    }
    this.table[hole] = 0;
    this.used[slot] = 0;
  }
}

/**
 * Digests of content the other side holds outside the lockstep cache (seeded content, e.g. disk
 * blocks the storage pre-copy already put at the target). No content, no eviction: bounded count.
 */
export class DigestSet {
  private readonly keys: Uint32Array;
  private readonly table: Int32Array;
  private readonly mask: number;
  readonly capacity: number;
  size = 0;

  constructor(capacity: number) {
    this.capacity = Math.max(16, capacity);
    this.keys = new Uint32Array(this.capacity * DIGEST_WORDS);
    let t = 1;
    while (t < this.capacity * 2) t <<= 1;
    this.table = new Int32Array(t);
    this.mask = t - 1;
  }

  has(k: Uint32Array): boolean {
    let i = k[0] & this.mask;
    for (;;) {
      const v = this.table[i];
      if (v === 0) return false;
      const o = (v - 1) * DIGEST_WORDS;
      if (this.keys[o] === k[0] && this.keys[o + 1] === k[1] && this.keys[o + 2] === k[2] && this.keys[o + 3] === k[3]) return true;
      i = (i + 1) & this.mask;
    }
  }

  /** Adds a digest; false when the set is full. */
  add(k: Uint32Array): boolean {
    if (this.has(k)) return true;
    if (this.size >= this.capacity) return false;
    const slot = this.size++;
    this.keys.set(k.subarray(0, DIGEST_WORDS), slot * DIGEST_WORDS);
    let i = k[0] & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
    return true;
  }
}
