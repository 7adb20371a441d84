// The encoder's output side for one session: whatever the parsers recognised becomes ops here,
// a cache reference, a seed reference, an XOR delta or a literal (inserted into the shared cache),
// or raw bytes passed through, and the ops are collected into batches. The parsers only decide
// where pages, chunks and structure are; every wire-format decision is made in this file.
import { OpWriter } from '../bytes.ts';
import { digest, DIGEST_WORDS, fingerprint, FP_WORDS } from '../cache.ts';
import type { CodecContext } from '../context.ts';
import { PAGE_SIZE } from '../context.ts';
import { EFFORT_FULL, EFFORT_PASS } from '../adaptive.ts';
import { encodeDelta } from '../delta.ts';
import * as O from '../ops.ts';
import { PREV_SLOT, PREV_ZERO, type PrevTable } from '../prev.ts';
import type { SessionStats } from '../stats.ts';

export interface Batch {
  /** A view into the encoder's reusable buffer: consume (compress or copy) it synchronously. */
  ops: Buffer;
  rawLen: number;
  /** Cache inserts the batch makes (the receiver skips as many slots if it cannot decode it). */
  inserts: number;
}

export interface OutputOptions {
  /** Emit a batch once its ops reach this size. */
  batchOpBytes: number;
  /** ...or once it covers this much input (keeps latency bounded when dedup is high). */
  batchRawBytes: number;
  /** Delta is used only if smaller than this; otherwise the literal page compresses as well. */
  deltaLimit: number;
  /** Send references to content the other side holds (cache and seeds). Default true. */
  dedup?: boolean;
  /** Send re-sent pages as deltas against their previous version. Default true. */
  deltas?: boolean;
  /**
   * The session may use only the newest `cacheWindow` entries of the shared cache: an older hit or
   * delta base counts as absent, as if the session had a cache of that many entries of its own
   * (the migration's relay.cacheSizeMiB within the relay's shared cache). 0: the session does not
   * use the cache at all, its chunks go raw. Default: the whole cache.
   */
  cacheWindow?: number;
}

// The delta base of a page the other side holds as zero.
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
const ZERO_WORDS = new Uint32Array(PAGE_SIZE / 4);

export class OpOutput {
  private readonly ctx: CodecContext;
  private readonly stats: SessionStats;
  private readonly w = new OpWriter();
  private readonly onBatch: (b: Batch) => void;
  private readonly batchOpBytes: number;
  private readonly batchRawBytes: number;
  private readonly deltaLimit: number;
  private readonly dedup: boolean;
  private readonly deltas: boolean;
  private readonly window: number;
  private batchRaw = 0;
  private batchInserts = 0;
  /**
   * How much work a page gets now (adaptive.ts, EFFORT_*; the sender lowers it while its CPU is
   * the bottleneck). Any value keeps both sides in lockstep: a passed-through page is neither
   * cached nor remembered as a delta base, on either side.
   */
  effort = EFFORT_FULL;

  // Reusable scratch: an aligned page copy, its words, a fingerprint, a digest, a delta buffer.
  private readonly cur = Buffer.alloc(PAGE_SIZE);
  private readonly curWords = new Uint32Array(this.cur.buffer, this.cur.byteOffset, PAGE_SIZE / 4);
  private readonly fp = new Int32Array(FP_WORDS);
  private readonly key = new Uint32Array(DIGEST_WORDS);
  private readonly deltaBuf = Buffer.alloc(PAGE_SIZE + 64);

  constructor(ctx: CodecContext, stats: SessionStats, onBatch: (b: Batch) => void, o: OutputOptions) {
    this.ctx = ctx;
    this.stats = stats;
    this.onBatch = onBatch;
    this.batchOpBytes = o.batchOpBytes;
    this.batchRawBytes = o.batchRawBytes;
    this.deltaLimit = o.deltaLimit;
    this.dedup = o.dedup ?? true;
    this.deltas = o.deltas ?? true;
    this.window = o.cacheWindow ?? Infinity;
  }

  /** A cache slot this session may use (inside its window), else -1. */
  private usable(slot: number): number {
    return slot >= 0 && this.ctx.cache.age(slot) < this.window ? slot : -1;
  }

  /** Bytes of ops in the open batch (the QEVM parser measures each pre-copy round's share). */
  get opLen(): number {
    return this.w.len;
  }

  /** The op buffer's size (it is reused for every batch of the session). */
  get memoryBytes(): number {
    return this.w.buf.length;
  }

  /** The open batch has reached its size limit (in ops, or in input covered). */
  get full(): boolean {
    return this.w.len >= this.batchOpBytes || this.batchRaw >= this.batchRawBytes;
  }

  /** Emits the open batch. */
  emit(): void {
    const ops = this.w.view();
    this.stats.opsOut += ops.length;
    const rawLen = this.batchRaw;
    const inserts = this.batchInserts;
    this.batchRaw = 0;
    this.batchInserts = 0;
    this.onBatch({ ops, rawLen, inserts });
  }

  // ---------------------------------------------------------------- passed through

  /** src[start, end) as is, counted under technique `t`. */
  raw(src: Buffer, start: number, end: number, t: number): void {
    if (end <= start) return;
    const before = this.w.len;
    this.w.u8(O.OP_RAW);
    this.w.varint(end - start);
    this.w.bytes(src, start, end);
    this.batchRaw += end - start;
    this.stats.add(t, end - start, this.w.len - before);
  }

  /** A QEMU ZERO record (header and fill byte) as one op: the receiver learns the page is zero. */
  qemuZero(src: Buffer, start: number, end: number): void {
    const before = this.w.len;
    this.w.u8(O.OP_QZERO);
    this.w.bytes(src, start, end);
    this.batchRaw += end - start;
    this.stats.add(O.T_ZERO, end - start, this.w.len - before);
  }

  /**
   * A QEMU-side XBZRLE/compressed page record: the content is not known here, so both sides
   * forget the page. This is an op, not raw bytes, so the receiver follows the block change too.
   */
  qemuOpaque(src: Buffer, start: number, hdrEnd: number, end: number): void {
    const before = this.w.len;
    this.w.u8(O.OP_QOTHER);
    this.w.bytes(src, start, hdrEnd);
    this.w.varint(end - hdrEnd);
    this.w.bytes(src, hdrEnd, end);
    this.batchRaw += end - start;
    this.stats.add(O.T_STRUCTURE, end - start, this.w.len - before);
  }

  // ---------------------------------------------------------------- deduplicated

  /** Generic chunk: a cache reference if the other side holds it, else a literal inserted in the cache. */
  chunk(src: Buffer, start: number, end: number): void {
    const n = end - start;
    // Chunks are cached only to be referenced later: without dedup (or a cache) they go raw.
    if (n < 64 || n > PAGE_SIZE || !this.dedup || this.window === 0 || this.effort === EFFORT_PASS) { this.raw(src, start, end, O.T_GENERIC_LITERAL); return; }
    const before = this.w.len;
    const cur = this.cur;
    src.copy(cur, 0, start, end);
    fingerprint(this.curWords, cur, 0, n, this.fp);
    const cache = this.ctx.cache;
    this.stats.cacheLookups++;
    const slot = this.usable(cache.find(this.fp, cur, 0, n));
    if (slot >= 0 || this.seeded(n)) {
      this.stats.cacheHits++;
      if (slot >= 0) { this.w.u8(O.OP_CHUNK_REF); this.putRef(slot); } else { this.w.u8(O.OP_CHUNK_SEED); this.putKey(this.key); }
      this.batchRaw += n;
      this.stats.add(O.T_GENERIC_DEDUP, n, this.w.len - before);
      return;
    }
    cache.insertKnown(cur, 0, n, this.fp);
    this.batchInserts++;
    this.w.u8(O.OP_CHUNK_LIT);
    this.w.varint(n);
    this.w.bytes(cur, 0, n);
    this.batchRaw += n;
    this.stats.add(O.T_GENERIC_LITERAL, n, this.w.len - before);
  }

  /**
   * Encodes one full page: a cache or seed reference, else a delta against its previous version
   * (`prev[idx]`) if that is small enough, else a literal. `opBase` is OP_QPAGE_LIT (the QEMU
   * record header src[hdrStart, hdrEnd) follows the op byte) or OP_KPAGE_LIT (the varint
   * `keyIndex` follows it).
   */
  page(opBase: number, src: Buffer, hdrStart: number, hdrEnd: number, keyIndex: number,
    dataOff: number, prev: PrevTable, idx: number): void {
    if (this.effort === EFFORT_PASS) { this.passPage(opBase, src, hdrStart, hdrEnd, dataOff, prev, idx); return; }
    const before = this.w.len;
    const cache = this.ctx.cache;
    const cur = this.cur;
    src.copy(cur, 0, dataOff, dataOff + PAGE_SIZE);
    const fp = this.fp;
    fingerprint(this.curWords, cur, 0, PAGE_SIZE, fp);
    const hit = this.dedup ? this.usable(cache.find(fp, cur, 0, PAGE_SIZE)) : -1;
    if (this.dedup) this.stats.cacheLookups++;
    if (hit >= 0 || (this.dedup && this.seeded(PAGE_SIZE))) {
      this.stats.cacheHits++;
      if (hit >= 0) {
        this.header(opBase + O.ENC_REF, src, hdrStart, hdrEnd, keyIndex);
        this.putRef(hit);
        prev.setSlot(idx, hit, fp[0]);
      } else {
        this.header(opBase === O.OP_QPAGE_LIT ? O.OP_QPAGE_SEED : O.OP_KPAGE_SEED, src, hdrStart, hdrEnd, keyIndex);
        this.putKey(this.key);
        prev.clear(idx);
      }
      this.batchRaw += hdrEnd - hdrStart + PAGE_SIZE;
      this.stats.add(O.T_DEDUP, hdrEnd - hdrStart + PAGE_SIZE, this.w.len - before);
      return;
    }
    const ps = this.deltas ? prev.get(idx) : -1;
    let dlen = -1;
    if (ps === PREV_SLOT) {
      const slot = this.usable(prev.baseSlot(idx, cache));
      if (slot >= 0) {
        const off = cache.slotOffset(slot);
        dlen = encodeDelta(cache.words, off >>> 2, cache.slab, off, this.curWords, cur, this.deltaBuf, 0, this.deltaLimit);
      }
    } else if (ps === PREV_ZERO) {
      dlen = encodeDelta(ZERO_WORDS, 0, ZERO_PAGE, 0, this.curWords, cur, this.deltaBuf, 0, this.deltaLimit);
    }
    const slot = cache.insertKnown(cur, 0, PAGE_SIZE, fp);
    this.batchInserts++;
    prev.setSlot(idx, slot, fp[0]);
    if (dlen >= 0) {
      this.header(opBase + O.ENC_DELTA, src, hdrStart, hdrEnd, keyIndex);
      // Defence in depth: the receiver checks the rebuilt page against its fingerprint.
      const c = fp[0];
      this.w.u8(c & 0xff); this.w.u8((c >>> 8) & 0xff); this.w.u8((c >>> 16) & 0xff); this.w.u8(c >>> 24);
      this.w.varint(dlen);
      this.w.bytes(this.deltaBuf, 0, dlen);
      this.batchRaw += hdrEnd - hdrStart + PAGE_SIZE;
      this.stats.add(O.T_DELTA, hdrEnd - hdrStart + PAGE_SIZE, this.w.len - before);
      return;
    }
    this.header(opBase + O.ENC_LIT, src, hdrStart, hdrEnd, keyIndex);
    this.w.bytes(cur, 0, PAGE_SIZE);
    this.batchRaw += hdrEnd - hdrStart + PAGE_SIZE;
    this.stats.add(O.T_LITERAL, hdrEnd - hdrStart + PAGE_SIZE, this.w.len - before);
  }

  /**
   * A page passed through, not hashed: a QEMU page as an opaque page record (the receiver still
   * follows the RAM block and forgets the page, as for QEMU's own XBZRLE records), a keyed page as
   * raw bytes. Both sides forget its previous version, so no later delta refers to it.
   */
  private passPage(opBase: number, src: Buffer, hdrStart: number, hdrEnd: number, dataOff: number, prev: PrevTable, idx: number): void {
    prev.clear(idx);
    if (opBase !== O.OP_QPAGE_LIT) { this.raw(src, dataOff, dataOff + PAGE_SIZE, O.T_LITERAL); return; }
    const before = this.w.len;
    this.w.u8(O.OP_QOTHER);
    this.w.bytes(src, hdrStart, hdrEnd);
    this.w.varint(PAGE_SIZE);
    this.w.bytes(src, dataOff, dataOff + PAGE_SIZE);
    this.batchRaw += hdrEnd - hdrStart + PAGE_SIZE;
    this.stats.add(O.T_LITERAL, hdrEnd - hdrStart + PAGE_SIZE, this.w.len - before);
  }

  /** Is cur[0, n) content the receiver holds as a seed? (Its SHA-256 is then in this.key.) */
  private seeded(n: number): boolean {
    const seeds = this.ctx.remoteSeeds;
    if (!seeds?.size) return false;
    digest(n === PAGE_SIZE ? this.cur : this.cur.subarray(0, n), this.key);
    return seeds.has(this.key);
  }

  /** A cache reference: the entry's slot (the same on both sides) and its fingerprint. */
  private putRef(slot: number): void {
    const w = this.w;
    w.varint(slot);
    const a = this.fp[0];
    const b = this.fp[1];
    w.u8(a & 0xff); w.u8((a >>> 8) & 0xff); w.u8((a >>> 16) & 0xff); w.u8(a >>> 24);
    w.u8(b & 0xff); w.u8((b >>> 8) & 0xff); w.u8((b >>> 16) & 0xff); w.u8(b >>> 24);
  }

  private putKey(k: Uint32Array): void {
    const w = this.w;
    for (let i = 0; i < DIGEST_WORDS; i++) {
      const v = k[i];
      w.u8(v & 0xff); w.u8((v >>> 8) & 0xff); w.u8((v >>> 16) & 0xff); w.u8(v >>> 24);
    }
  }

  private header(op: number, src: Buffer, hdrStart: number, hdrEnd: number, keyIndex: number): void {
    this.w.u8(op);
    if (keyIndex < 0) this.w.bytes(src, hdrStart, hdrEnd);
    else this.w.varint(keyIndex);
  }
}
