// Receiver side of the codec for one session: replays a batch of ops into output bytes. Every
// read is bounds-checked and every cache reference is checked against the fingerprint this side
// computed from the bytes it holds, so a corrupt or desynchronised batch raises DecodeError and
// produces no output at all.
import { DecodeError, OpReader } from './bytes.ts';
import { DIGEST_WORDS } from './cache.ts';
import type { ContentCache } from './cache.ts';
import type { DigestStore } from './digest-store.ts';
import type { CodecContext } from './context.ts';
import { PAGE_SIZE } from './context.ts';
import { applyDelta } from './delta.ts';
import * as O from './ops.ts';
import { PrevTable, PREV_SLOT, PREV_ZERO } from './prev.ts';

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
const MAX_BLOCKS = 4096;

export class SessionDecoder {
  private readonly ctx: CodecContext;
  private readonly blocks = new Map<string, PrevTable>();
  private curBlock: PrevTable | undefined;
  private readonly nbdPrev = new PrevTable();
  private readonly key = new Uint32Array(DIGEST_WORDS);
  private slot = -1;
  private slotFp0 = 0;
  private qIdx = 0;
  private qHdrStart = 0;
  /** Batches decoded and the bytes they produced: what the session's FIN must state. */
  batches = 0;
  bytesOut = 0;

  constructor(ctx: CodecContext) {
    this.ctx = ctx;
  }

  /**
   * Decodes one batch of ops whose output is exactly `rawLen` bytes (into `into` if it is large
   * enough). `inserts` (if known, >= 0) is the number of cache inserts the sender made for it: a
   * batch that fails is still charged that many slots (ContentCache.skip), so that the slot
   * numbering stays aligned with the sender's for every other session.
   */
  decode(ops: Buffer, rawLen: number, into?: Buffer, inserts = -1): Buffer {
    const cache = this.ctx.cache;
    const before = cache.inserts;
    try {
      const out = this.replay(ops, rawLen, into);
      if (inserts >= 0 && cache.inserts - before !== inserts) throw new DecodeError('corrupt', `batch made ${cache.inserts - before} cache inserts, announced ${inserts}`);
      return out;
    } catch (err) {
      const made = cache.inserts - before;
      if (inserts > made) cache.skip(inserts - made);
      throw err;
    }
  }

  /**
   * The session's FIN: the sender's count of batches and bytes must be exactly what was decoded.
   * Anything else means frames were lost or repeated on the way, so the output is not the stream.
   */
  finish(sent: { batches: number; bytes: number }): void {
    if (sent.batches === this.batches && sent.bytes === this.bytesOut) return;
    const short = sent.batches > this.batches || sent.bytes > this.bytesOut;
    throw new DecodeError(short ? 'truncated' : 'corrupt', `${short ? 'incomplete' : 'excess'} session: the sender sent ${sent.batches} batches of ${sent.bytes} bytes, ${this.batches} batches of ${this.bytesOut} bytes were received`);
  }

  private replay(ops: Buffer, rawLen: number, into?: Buffer): Buffer {
    if (rawLen > O.MAX_BATCH_RAW) throw new DecodeError('corrupt', `batch too large (${rawLen})`);
    const out = into && into.length >= rawLen ? into.subarray(0, rawLen) : Buffer.allocUnsafe(rawLen);
    const r = new OpReader(ops);
    let o = 0;
    const room = (n: number): void => {
      if (o + n > rawLen) throw new DecodeError('corrupt', 'batch output longer than announced');
    };
    while (r.pos < r.end) {
      const op = r.u8();
      switch (op) {
        case O.OP_RAW: {
          const n = r.varint();
          r.need(n); room(n);
          ops.copy(out, o, r.pos, r.pos + n);
          r.pos += n; o += n;
          break;
        }
        case O.OP_CHUNK_LIT: {
          const n = r.varint();
          r.need(n); room(n);
          if (n > PAGE_SIZE) throw new DecodeError('corrupt', 'chunk larger than a cache slot');
          this.ctx.cache.insert(ops, r.pos, r.pos + n);
          ops.copy(out, o, r.pos, r.pos + n);
          r.pos += n; o += n;
          break;
        }
        case O.OP_CHUNK_REF: case O.OP_CHUNK_SEED: {
          const store = op === O.OP_CHUNK_REF ? this.ref(r) : this.seed(r);
          const n = store.length(this.slot);
          room(n);
          store.slab.copy(out, o, store.slotOffset(this.slot), store.slotOffset(this.slot) + n);
          o += n;
          break;
        }
        case O.OP_QZERO: {
          const prev = this.qheader(r, ops);
          const idx = this.qIdx;
          const hdrStart = this.qHdrStart;
          r.need(1);
          const fill = ops[r.pos++];
          room(r.pos - hdrStart);
          ops.copy(out, o, hdrStart, r.pos);
          o += r.pos - hdrStart;
          if (fill === 0) prev.setZero(idx);
          else prev.clear(idx);
          break;
        }
        case O.OP_QOTHER: {
          const prev = this.qheader(r, ops);
          const idx = this.qIdx;
          const hdrStart = this.qHdrStart;
          const hdrEnd = r.pos;
          const n = r.varint();
          r.need(n);
          room(hdrEnd - hdrStart + n);
          ops.copy(out, o, hdrStart, hdrEnd);
          o += hdrEnd - hdrStart;
          ops.copy(out, o, r.pos, r.pos + n);
          o += n;
          r.pos += n;
          prev.clear(idx);
          break;
        }
        case O.OP_QPAGE_LIT: case O.OP_QPAGE_REF: case O.OP_QPAGE_DELTA: case O.OP_QPAGE_SEED: {
          const prev = this.qheader(r, ops);
          const idx = this.qIdx;
          const hdrStart = this.qHdrStart;
          const h = r.pos - hdrStart;
          room(h + PAGE_SIZE);
          ops.copy(out, o, hdrStart, r.pos);
          o += h;
          this.page(op === O.OP_QPAGE_SEED ? O.ENC_SEED : op - O.OP_QPAGE_LIT, r, ops, out, o, prev, idx);
          o += PAGE_SIZE;
          break;
        }
        case O.OP_KPAGE_LIT: case O.OP_KPAGE_REF: case O.OP_KPAGE_DELTA: case O.OP_KPAGE_SEED: {
          const idx = r.varint();
          if (idx >= O.MAX_PAGE_INDEX) throw new DecodeError('corrupt', 'block index out of range');
          room(PAGE_SIZE);
          this.page(op === O.OP_KPAGE_SEED ? O.ENC_SEED : op - O.OP_KPAGE_LIT, r, ops, out, o, this.nbdPrev, idx);
          o += PAGE_SIZE;
          break;
        }
        default:
          throw new DecodeError('corrupt', `unknown op 0x${op.toString(16)}`);
      }
    }
    if (o !== rawLen) throw new DecodeError('corrupt', `batch output ${o} bytes, announced ${rawLen}`);
    this.bytesOut += rawLen;
    this.batches++;
    return out;
  }

  /** Resolves a cache reference (slot + fingerprint): returns the cache, with the slot in this.slot. */
  private ref(r: OpReader): ContentCache {
    const slot = r.varint();
    r.need(8);
    const f0 = r.buf.readInt32LE(r.pos);
    const f1 = r.buf.readInt32LE(r.pos + 4);
    r.pos += 8;
    const cache = this.ctx.cache;
    if (!cache.holds(slot, f0, f1)) throw new DecodeError('cache-desync', 'reference to content the receiver does not hold (cache desync)');
    this.slot = slot;
    this.slotFp0 = f0;
    return cache;
  }

  /** Resolves a reference to seeded content by its digest: returns the store, with the slot in this.slot. */
  private seed(r: OpReader): DigestStore {
    r.need(16);
    const k = this.key;
    for (let i = 0; i < DIGEST_WORDS; i++) k[i] = r.buf.readUInt32LE(r.pos + 4 * i);
    r.pos += 16;
    const seeds = this.ctx.seeds;
    this.slot = seeds ? seeds.find(k) : -1;
    if (this.slot < 0) throw new DecodeError('cache-desync', 'reference to seeded content the receiver does not hold (cache desync)');
    return seeds!;
  }

  /** Parses a QEMU page record header (as the sender copied it): returns the page's table, and
   *  sets qIdx (page index) and qHdrStart (where the header starts in the ops). */
  private qheader(r: OpReader, ops: Buffer): PrevTable {
    const hdrStart = r.pos;
    r.need(8);
    const hi = ops.readUInt32BE(r.pos);
    const lo = ops.readUInt32BE(r.pos + 4);
    r.pos += 8;
    if (!(lo & O.RAM_CONTINUE)) {
      const len = r.u8();
      r.need(len);
      const name = ops.toString('latin1', r.pos, r.pos + len);
      r.pos += len;
      let t = this.blocks.get(name);
      if (!t) {
        if (this.blocks.size >= MAX_BLOCKS) throw new DecodeError('corrupt', 'too many RAM blocks');
        t = new PrevTable();
        this.blocks.set(name, t);
      }
      this.curBlock = t;
    }
    if (!this.curBlock) throw new DecodeError('corrupt', 'CONTINUE page without a block');
    const idx = hi * 1048576 + (lo >>> 12);
    if (idx >= O.MAX_PAGE_INDEX) throw new DecodeError('corrupt', 'page address out of range');
    this.qIdx = idx;
    this.qHdrStart = hdrStart;
    return this.curBlock;
  }

  private page(enc: number, r: OpReader, ops: Buffer, out: Buffer, o: number, prev: PrevTable, idx: number): void {
    const cache = this.ctx.cache;
    if (enc === O.ENC_REF || enc === O.ENC_SEED) {
      const store = enc === O.ENC_REF ? this.ref(r) : this.seed(r);
      if (store.length(this.slot) !== PAGE_SIZE) throw new DecodeError('corrupt', 'page reference to a short entry');
      const off = store.slotOffset(this.slot);
      store.slab.copy(out, o, off, off + PAGE_SIZE);
      if (enc === O.ENC_REF) prev.setSlot(idx, this.slot, this.slotFp0);
      else prev.clear(idx);
      return;
    }
    let check: number | undefined;
    if (enc === O.ENC_LIT) {
      r.need(PAGE_SIZE);
      ops.copy(out, o, r.pos, r.pos + PAGE_SIZE);
      r.pos += PAGE_SIZE;
    } else {
      r.need(4);
      check = ops.readInt32LE(r.pos);
      r.pos += 4;
      const n = r.varint();
      r.need(n);
      const ps = prev.get(idx);
      let base: Buffer;
      let baseOff = 0;
      if (ps === PREV_ZERO) base = ZERO_PAGE;
      else if (ps === PREV_SLOT) {
        const slot = prev.baseSlot(idx, cache);
        if (slot < 0) throw new DecodeError('cache-desync', 'delta base not in the cache (cache desync)');
        base = cache.slab;
        baseOff = cache.slotOffset(slot);
      } else throw new DecodeError('cache-desync', 'delta against a page the receiver never saw (cache desync)');
      if (!applyDelta(base, ops, r.pos, r.pos + n, out, o, PAGE_SIZE, baseOff)) throw new DecodeError('corrupt', 'malformed delta');
      r.pos += n;
    }
    const slot = cache.insert(out, o, o + PAGE_SIZE);
    const fp0 = cache.fp(slot, 0);
    if (check !== undefined && fp0 !== check) throw new DecodeError('cache-desync', 'delta result does not match its check (cache desync)');
    prev.setSlot(idx, slot, fp0);
  }
}
