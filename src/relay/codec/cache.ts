// Content cache shared by all sessions of one relay pair. Entries are pages/blocks/chunks of at
// most `slotSize` bytes in a FIFO of slots. Memory is one slab of `slots * slotSize` bytes plus
// small typed arrays; nothing is allocated per entry.
//
// Lockstep: both relays insert the same contents in the same order (driven by the op stream), and
// evict FIFO with the same capacity, so an entry has the same slot number on both sides and the
// sender names it by that slot, with no extra messages. Identity is decided by content, not by a
// hash: the sender indexes entries by a fast 64-bit fingerprint and confirms every hit by
// comparing all bytes, so a fingerprint collision (accidental or crafted) can only cost a miss.
// The receiver computes each entry's fingerprint from the bytes it holds and checks it against the
// one the sender quotes with every reference, so a desynchronised cache can only cause a clean
// session error, never wrong bytes. Batches that the receiver cannot decode announce how many
// inserts they carried, and the receiver skips as many slots (see `skip`), which keeps the slot
// numbering aligned. See README.md.
import crypto from 'node:crypto';
import { copyBytes } from './bytes.ts';

export const DIGEST_WORDS = 4; // 128 bits

/** First 128 bits of SHA-256: the key of seeded content (and of the storage agents' page index). */
export function digest(data: Uint8Array, out: Uint32Array): void {
  const d = crypto.hash('sha256', data, 'buffer');
  out[0] = d.readUInt32LE(0);
  out[1] = d.readUInt32LE(4);
  out[2] = d.readUInt32LE(8);
  out[3] = d.readUInt32LE(12);
}

export const FP_WORDS = 2; // 64 bits

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * 64-bit non-cryptographic fingerprint of bytes[off, off+len), where `words` views the same memory
 * as `bytes` and `off` is a multiple of 4. Four independent multiply-rotate lanes over 32-bit
 * words (~0.5 us per 4 KiB page, against ~2.7 us for SHA-256 here), then a murmur3 finaliser. It
 * is an index and a desync check, never a proof of identity (see the file comment).
 */
export function fingerprint(words: Uint32Array, bytes: Uint8Array, off: number, len: number, out: Int32Array): void {
  let a = 0x9e3779b9 ^ len;
  let b = 0x85ebca6b;
  let c = 0xc2b2ae35;
  let d = 0x27d4eb2f;
  let w = off >>> 2;
  const stop = w + ((len >>> 4) << 2);
  for (; w < stop; w += 4) {
    a = Math.imul(a ^ words[w], 0x85ebca77); a = (a << 13) | (a >>> 19);
    b = Math.imul(b ^ words[w + 1], 0xc2b2ae3d); b = (b << 13) | (b >>> 19);
    c = Math.imul(c ^ words[w + 2], 0x27d4eb2f); c = (c << 13) | (c >>> 19);
    d = Math.imul(d ^ words[w + 3], 0x165667b1); d = (d << 13) | (d >>> 19);
  }
  for (let i = w << 2, end = off + len; i < end; i++) {
    a = Math.imul(a ^ bytes[i], 0x85ebca77); a = (a << 13) | (a >>> 19);
  }
  const x = fmix(a ^ ((b << 8) | (b >>> 24)) ^ Math.imul(c, 0x9e3779b1) ^ ((d << 24) | (d >>> 8)));
  out[0] = x;
  out[1] = fmix(b ^ ((c << 8) | (c >>> 24)) ^ Math.imul(d, 0x85ebca77) ^ ((a << 24) | (a >>> 8)) ^ x);
}

/**
 * Bounds on the sender's table work per page. A guest could fill memory with pages crafted to
 * share a fingerprint (it is not a cryptographic hash): each lookup then examines at most
 * MAX_PROBE cells and compares the content of at most MAX_COMPARES candidates, and an entry that
 * finds no free cell within MAX_PROBE of its home is simply not indexed (it keeps its FIFO slot,
 * so the lockstep is unaffected; the sender just cannot dedup against it). Such pages cost a
 * literal, never a quadratic slowdown.
 */
export const MAX_PROBE = 32;
export const MAX_COMPARES = 4;

export class ContentCache {
  readonly slots: number;
  readonly slotSize: number;
  readonly slab: Buffer;
  /** The slab as 32-bit words (slots are 4-byte aligned). */
  readonly words: Uint32Array;
  /** 2 fingerprint words per slot. */
  private readonly fps: Int32Array;
  private readonly lengths: Uint32Array;
  private readonly used: Uint8Array;
  /** 1 where the slot's entry is in the table. */
  private readonly listed: Uint8Array;
  /**
   * Open-addressing table of slot+1 (0 = empty), linear probing, at most half full. Only the
   * sender looks content up (the receiver resolves references by slot), so the table is built on
   * the first lookup and kept from then on: the receiver never pays for it.
   */
  private readonly table: Int32Array;
  private indexed = false;
  private readonly mask: number;
  private readonly fpScratch = new Int32Array(FP_WORDS);
  private next = 0;
  size = 0;
  inserts = 0;
  evictions = 0;
  /** Work counters of find(): lookups, table cells examined, full content compares. They bound
   *  a lookup's cost in units a test can assert (the time per unit is bench/cache-flood.ts's). */
  lookups = 0;
  probes = 0;
  compares = 0;

  constructor(bytes: number, slotSize = 4096) {
    if (slotSize % 4) throw new Error('slot size must be a multiple of 4');
    this.slotSize = slotSize;
    this.slots = Math.max(16, Math.floor(bytes / slotSize));
    // Touch every page now: the configured bound is resident from the start, and the hot path
    // does not pay first-touch page faults (measured: ~2 us of system time per 4 KiB insert).
    this.slab = Buffer.allocUnsafeSlow(this.slots * slotSize).fill(0);
    this.words = new Uint32Array(this.slab.buffer, this.slab.byteOffset, this.slab.length >>> 2);
    this.fps = new Int32Array(this.slots * FP_WORDS);
    this.lengths = new Uint32Array(this.slots);
    this.used = new Uint8Array(this.slots);
    this.listed = new Uint8Array(this.slots);
    this.table = probeTable(this.slots);
    this.mask = this.table.length - 1;
  }

  get full(): boolean {
    return this.size === this.slots;
  }

  get memoryBytes(): number {
    return this.slab.length + this.fps.byteLength + this.lengths.byteLength + this.table.byteLength + this.used.length + this.listed.length;
  }

  /** Slot whose content equals bytes[off, off+len) (whose fingerprint is `fp`), or -1. */
  find(fp: Int32Array, bytes: Buffer, off: number, len: number): number {
    if (!this.indexed) this.buildIndex();
    const f0 = fp[0];
    const f1 = fp[1];
    let i = f0 & this.mask;
    let compares = 0;
    this.lookups++;
    for (let probe = 0; probe < MAX_PROBE; probe++) {
      const v = this.table[i];
      this.probes++;
      if (v === 0) return -1;
      const s = v - 1;
      if (this.fps[2 * s] === f0 && this.fps[2 * s + 1] === f1 && this.lengths[s] === len) {
        const o = s * this.slotSize;
        this.compares++;
        if (bytes.compare(this.slab, o, o + len, off, off + len) === 0) return s;
        if (++compares === MAX_COMPARES) return -1;
      }
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  private buildIndex(): void {
    this.indexed = true;
    for (let k = 0; k < this.slots; k++) {
      const slot = (this.next + k) % this.slots; // oldest first
      if (this.used[slot]) this.place(slot);
    }
  }

  /** Receiver: does `slot` hold an entry whose fingerprint is (f0, f1)? */
  holds(slot: number, f0: number, f1: number): boolean {
    return slot >= 0 && slot < this.slots && this.used[slot] === 1 && this.fps[2 * slot] === f0 && this.fps[2 * slot + 1] === f1;
  }

  /** First fingerprint word of the entry in `slot`, if it is a full page; else undefined. */
  pageFp0(slot: number): number | undefined {
    return this.used[slot] === 1 && this.lengths[slot] === this.slotSize ? this.fps[2 * slot] : undefined;
  }

  fp(slot: number, i: number): number {
    return this.fps[2 * slot + i];
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

  /** The slot the next insert will use. */
  get nextSlot(): number {
    return this.next;
  }

  /** How many inserts ago `slot` was filled (0: the newest entry). Slots fill in FIFO order, so a
   *  session limited to the newest W entries (its cache window) may use a slot iff age < W. */
  age(slot: number): number {
    return (this.next - 1 - slot + this.slots) % this.slots;
  }

  /**
   * Inserts content (length <= slotSize), evicting the oldest entry; its fingerprint is computed
   * from the stored bytes. (A fourth argument, the SHA-256 key that callers of the previous,
   * digest-keyed cache pass, is ignored.)
   */
  insert(src: Uint8Array, start: number, end: number, _key?: Uint32Array): number {
    const slot = this.claimSlot();
    const len = end - start;
    const o = slot * this.slotSize;
    copyBytes(src, start, end, this.slab, o);
    fingerprint(this.words, this.slab, o, len, this.fpScratch);
    this.index(slot, len, this.fpScratch);
    return slot;
  }

  /** Inserts content whose fingerprint the caller has just computed from the same bytes. */
  insertKnown(src: Uint8Array, start: number, end: number, fp: Int32Array): number {
    const slot = this.claimSlot();
    copyBytes(src, start, end, this.slab, slot * this.slotSize);
    this.index(slot, end - start, fp);
    return slot;
  }

  /**
   * Receiver: the sender made `n` inserts that this side cannot replay (an undecodable batch).
   * The same slots are emptied here, so later slot numbers still agree; references to the
   * skipped content then fail cleanly.
   */
  skip(n: number): void {
    const m = Math.min(n, this.slots);
    for (let i = 0; i < m; i++) {
      const slot = this.claimSlot();
      this.used[slot] = 0;
      this.size--;
    }
    this.next = (this.next + (n - m)) % this.slots;
  }

  private claimSlot(): number {
    const slot = this.next;
    this.next = slot + 1 === this.slots ? 0 : slot + 1;
    if (this.used[slot]) {
      this.remove(slot);
      this.evictions++;
    } else {
      this.size++;
    }
    this.used[slot] = 1;
    this.inserts++;
    return slot;
  }

  private index(slot: number, len: number, fp: Int32Array): void {
    this.fps[2 * slot] = fp[0];
    this.fps[2 * slot + 1] = fp[1];
    this.lengths[slot] = len;
    if (this.indexed) this.place(slot);
  }

  /** Puts a slot in the table within MAX_PROBE cells of its home, or leaves it unlisted. */
  private place(slot: number): void {
    let i = this.fps[2 * slot] & this.mask;
    for (let probe = 0; probe < MAX_PROBE; probe++) {
      if (this.table[i] === 0) {
        this.table[i] = slot + 1;
        this.listed[slot] = 1;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Removes a slot from the table (backward-shift deletion keeps probe chains intact). */
  private remove(slot: number): void {
    this.used[slot] = 0;
    if (!this.listed[slot]) return;
    this.listed[slot] = 0;
    let i = this.fps[2 * slot] & this.mask;
    while (this.table[i] !== slot + 1) {
      if (this.table[i] === 0) return;
      i = (i + 1) & this.mask;
    }
    let hole = i;
    let j = (i + 1) & this.mask;
    while (this.table[j] !== 0) {
      const s = this.table[j] - 1;
      const home = this.fps[2 * s] & this.mask;
      // Move j into the hole when its home is not cyclically within (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        this.table[hole] = this.table[j];
        hole = j;
      }
      j = (j + 1) & this.mask;
    }
    this.table[hole] = 0;
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

/** An open-addressing index for `entries` slots: a power of two at least twice as large, so probe
 *  chains stay short (the mask is its length - 1). */
export function probeTable(entries: number): Int32Array {
  let t = 1;
  while (t < entries * 2) t <<= 1;
  return new Int32Array(t);
}
