// Sender side of the codec for one session (one migration connection). It parses the byte stream
// incrementally (QEMU QEVM v3, NBD requests, or nothing), turns pages/blocks/chunks into cache
// references, deltas or literals, and emits batches of ops. The parse is only a hint: every byte
// is reproduced exactly whatever the parser believed, so losing sync costs ratio, never data.
import { OpWriter } from '../bytes.ts';
import { nextChunk } from '../cdc.ts';
import { digest, DIGEST_WORDS, fingerprint, FP_WORDS } from '../cache.ts';
import type { CodecContext } from '../context.ts';
import { PAGE_SIZE } from '../context.ts';
import { encodeDelta } from '../delta.ts';
import * as O from '../ops.ts';
import { PrevTable, PREV_SLOT, PREV_ZERO } from '../prev.ts';
import { SessionStats } from '../stats.ts';

export type StreamMode = 'auto' | 'qevm' | 'nbd' | 'generic';

export interface EncoderOptions {
  mode?: StreamMode;
  /** Emit a batch once its ops reach this size. */
  batchOpBytes?: number;
  /** ...or once it covers this much input (keeps latency bounded when dedup is high). */
  batchRawBytes?: number;
  /** Delta is used only if smaller than this; otherwise the literal page compresses as well. */
  deltaLimit?: number;
}

export interface Batch {
  /** A view into the encoder's reusable buffer: consume (compress or copy) it synchronously. */
  ops: Buffer;
  rawLen: number;
  /** Cache inserts the batch makes (the receiver skips as many slots if it cannot decode it). */
  inserts: number;
}

// Parser states.
const S_SNIFF = 0;
const S_PRERAM = 1;
const S_RAM_MEMSIZE = 2;
const S_RAM_BLOCKS = 3;
const S_RAM_RECORDS = 4;
const S_FOOTER = 5;
const S_TOP = 6;
const S_GENERIC = 7;
const S_NBD = 8;
const S_NBD_WRITE = 9;
const S_BLOCK_RECORDS = 10;
const S_BLOCK_DATA = 11;

const RAM_IDSTR = Buffer.from([0x03, 0x72, 0x61, 0x6d]); // len=3 "ram"
const BLOCK_IDSTR = Buffer.from([0x05, 0x62, 0x6c, 0x6f, 0x63, 0x6b]); // len=5 "block"
const RAM_VERSION = 4;
const BLOCK_VERSION = 1;
// QEMU 7.2 block migration (migration/block.c): each record starts with be64 (sector << 9) | flags.
const BLK_DEVICE_BLOCK = 0x01;
const BLK_EOS = 0x02;
const BLK_PROGRESS = 0x04;
const BLK_ZERO_BLOCK = 0x08;
const BLK_FLAGS_MASK = 0x1ff;
const BLK_BLOCK_SIZE = 1 << 20; // BLK_MIG_BLOCK_SIZE: every non-zero DEVICE_BLOCK carries this much
const QEVM_PREFIX = Buffer.from('QEVM', 'latin1');
const NBD_MAGIC = Buffer.from([0x25, 0x60, 0x95, 0x13]);
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
const EMPTY = Buffer.alloc(0);
const ZERO_WORDS = new Uint32Array(PAGE_SIZE / 4);
const PRERAM_SCAN_LIMIT = 1 << 20;
const MAX_NBD_WRITE = 64 << 20;

interface Block {
  name: string;
  ordinal: number;
  usedLength: number; // -1 when not declared
  prev: PrevTable;
}

export class SessionEncoder {
  readonly stats = new SessionStats();
  private readonly ctx: CodecContext;
  private readonly w = new OpWriter();
  private readonly onBatch: (b: Batch) => void;
  private readonly batchOpBytes: number;
  private readonly batchRawBytes: number;
  private readonly deltaLimit: number;
  private batchRaw = 0;
  private batchInserts = 0;
  private pending: Buffer = EMPTY;
  private staging: Buffer = Buffer.allocUnsafeSlow(1 << 17);
  private state: number;
  private ended = false;

  // QEVM state
  private ramSectionId = -1;
  private blockSectionId = -1;
  /** Section whose records are being parsed: its footer must carry this id. */
  private curSectionId = -1;
  private memRemaining = 0;
  private preramScanned = 0;
  private readonly blocks = new Map<string, Block>();
  private curBlock: Block | undefined;
  private lastPos = -1;

  // Block-migration data state (a 1 MiB block being split into pages).
  private blkRemaining = 0;
  private blkIndex = 0;

  // NBD state. The per-page table is also the one for block-migration pages: the decoder keeps
  // one table per session for every keyed-page op (OP_KPAGE_*), and a session is either NBD or QEVM.
  private readonly nbdPrev = new PrevTable();
  private nbdRemaining = 0;
  private nbdIndex = 0;
  private nbdAligned = false;

  // Reusable scratch: an aligned page copy, its words, a fingerprint, a digest, a delta buffer.
  private readonly cur = Buffer.alloc(PAGE_SIZE);
  private readonly curWords = new Uint32Array(this.cur.buffer, this.cur.byteOffset, PAGE_SIZE / 4);
  private readonly fp = new Int32Array(FP_WORDS);
  private readonly key = new Uint32Array(DIGEST_WORDS);
  private readonly deltaBuf = Buffer.alloc(PAGE_SIZE + 64);

  constructor(ctx: CodecContext, onBatch: (b: Batch) => void, opts: EncoderOptions = {}) {
    this.ctx = ctx;
    this.onBatch = onBatch;
    this.batchOpBytes = opts.batchOpBytes ?? 512 << 10;
    this.batchRawBytes = opts.batchRawBytes ?? 4 << 20;
    this.deltaLimit = opts.deltaLimit ?? 3584;
    const mode = opts.mode ?? 'auto';
    this.stats.mode = mode;
    this.state = mode === 'generic' ? S_GENERIC : mode === 'nbd' ? S_NBD : S_SNIFF;
  }

  /** Memory of this session's per-page tables and buffers (the shared cache is not included). */
  get memoryBytes(): number {
    let n = this.nbdPrev.memoryBytes + this.staging.length + this.w.buf.length;
    for (const b of this.blocks.values()) n += b.prev.memoryBytes;
    return n;
  }

  /** Bytes received but not yet encoded (an incomplete record). */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Takes the shared cache: emits another session's open batch so frames stay in insert order. */
  private claim(): void {
    const a = this.ctx.active;
    if (a && a !== this) a.emitPending();
    this.ctx.active = this;
  }

  emitPending(): void {
    if (this.w.len) this.emit();
    if (this.ctx.active === this) this.ctx.active = undefined;
  }

  write(chunk: Buffer): void {
    if (this.ended) throw new Error('write after end');
    this.claim();
    this.stats.bytesIn += chunk.length;
    let buf = chunk;
    if (this.pending.length) {
      // Join the incomplete record with the new input in a reused staging buffer (no per-read
      // allocation). `pending` may itself live at the start of the staging buffer.
      const need = this.pending.length + chunk.length;
      if (this.staging.length < need) {
        const next = Buffer.allocUnsafeSlow(Math.max(need, this.staging.length * 2));
        this.pending.copy(next, 0);
        this.staging = next;
      } else if (this.pending.buffer !== this.staging.buffer || this.pending.byteOffset !== this.staging.byteOffset) {
        this.pending.copy(this.staging, 0);
      }
      chunk.copy(this.staging, this.pending.length);
      buf = this.staging.subarray(0, need);
    }
    const pos = this.parse(buf, 0, buf.length, false);
    this.keepPending(buf, pos);
    if (this.w.len >= this.batchOpBytes || this.batchRaw >= this.batchRawBytes) this.emit();
  }

  /** Keeps buf[pos..] for the next write, at the start of the staging buffer. */
  private keepPending(buf: Buffer, pos: number): void {
    const n = buf.length - pos;
    if (n === 0) { this.pending = EMPTY; return; }
    if (this.staging.length < n) this.staging = Buffer.allocUnsafeSlow(Math.max(n, this.staging.length * 2));
    if (buf.buffer === this.staging.buffer) this.staging.copyWithin(0, buf.byteOffset - this.staging.byteOffset + pos, buf.byteOffset - this.staging.byteOffset + buf.length);
    else buf.copy(this.staging, 0, pos);
    this.pending = this.staging.subarray(0, n);
  }

  /**
   * Emits what is encoded so far (the input went idle). With `force`, bytes of an incomplete
   * record are emitted too; the parser then cannot trust its position and goes generic.
   */
  flush(force = false): void {
    this.claim();
    if (this.pending.length && (force || this.state === S_GENERIC)) {
      if (this.state !== S_GENERIC) this.loseSync('stalled mid-record');
      const buf = this.pending;
      this.pending = EMPTY;
      const pos = this.parse(buf, 0, buf.length, true);
      this.raw(buf, pos, buf.length, O.T_STRUCTURE); // generic consumes all; this is a safety net
    }
    this.emitPending();
  }

  /** End of the input: everything left is emitted. */
  end(): void {
    if (this.ended) return;
    this.claim();
    if (this.pending.length) {
      const buf = this.pending;
      this.pending = EMPTY;
      // A trailing incomplete record is passed through verbatim.
      this.raw(buf, 0, buf.length, O.T_STRUCTURE);
    }
    this.ended = true;
    this.emitPending();
  }

  private emit(): void {
    const ops = this.w.view();
    this.stats.opsOut += ops.length;
    const rawLen = this.batchRaw;
    const inserts = this.batchInserts;
    this.batchRaw = 0;
    this.batchInserts = 0;
    this.onBatch({ ops, rawLen, inserts });
  }

  private loseSync(why: string): void {
    if (!this.stats.syncLost) this.stats.syncLost = why;
    this.state = S_GENERIC;
  }

  // ---------------------------------------------------------------- op emitters

  private raw(src: Buffer, start: number, end: number, t: number): void {
    if (end <= start) return;
    const before = this.w.len;
    this.w.u8(O.OP_RAW);
    this.w.varint(end - start);
    this.w.bytes(src, start, end);
    this.batchRaw += end - start;
    this.stats.add(t, end - start, this.w.len - before);
  }

  /** Generic chunk: a cache reference if the other side holds it, else a literal inserted in the cache. */
  private chunk(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n < 64 || n > PAGE_SIZE) { this.raw(src, start, end, O.T_GENERIC_LITERAL); return; }
    const before = this.w.len;
    const cur = this.cur;
    src.copy(cur, 0, start, end);
    fingerprint(this.curWords, cur, 0, n, this.fp);
    const cache = this.ctx.cache;
    this.stats.cacheLookups++;
    const slot = cache.find(this.fp, cur, 0, n);
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

  /**
   * Encodes one full page. `opBase` is OP_QPAGE_LIT or OP_KPAGE_LIT; the header (QEMU record
   * header bytes, or a varint block index) is written between the op byte and the payload.
   */
  private page(opBase: number, src: Buffer, hdrStart: number, hdrEnd: number, keyIndex: number,
    dataOff: number, prev: PrevTable, idx: number): void {
    const before = this.w.len;
    const cache = this.ctx.cache;
    const cur = this.cur;
    src.copy(cur, 0, dataOff, dataOff + PAGE_SIZE);
    const fp = this.fp;
    fingerprint(this.curWords, cur, 0, PAGE_SIZE, fp);
    this.stats.cacheLookups++;
    const hit = cache.find(fp, cur, 0, PAGE_SIZE);
    if (hit >= 0 || this.seeded(PAGE_SIZE)) {
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
    const ps = prev.get(idx);
    let dlen = -1;
    if (ps === PREV_SLOT) {
      const slot = prev.baseSlot(idx, cache);
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

  private header(op: number, src: Buffer, hdrStart: number, hdrEnd: number, keyIndex: number): void {
    this.w.u8(op);
    if (keyIndex < 0) this.w.bytes(src, hdrStart, hdrEnd);
    else this.w.varint(keyIndex);
  }

  // ---------------------------------------------------------------- parsing

  /** Consumes complete units of buf[pos, end); returns the position of the first unconsumed byte. */
  private parse(buf: Buffer, pos: number, end: number, final: boolean): number {
    for (;;) {
      if (this.w.len >= this.batchOpBytes || this.batchRaw >= this.batchRawBytes) this.emit();
      if (pos >= end) return pos;
      const next = this.step(buf, pos, end, final);
      if (next < 0) return pos; // needs more input
      pos = next;
    }
  }

  /** One parser step; returns the new position, or -1 when more input is needed. */
  private step(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    switch (this.state) {
      case S_SNIFF: {
        if (avail < 8) {
          if (final) { this.state = S_GENERIC; return pos; }
          // Not QEVM as soon as the first bytes disagree with the magic.
          for (let i = 0; i < avail && i < 4; i++) if (buf[pos + i] !== QEVM_PREFIX[i]) { this.state = S_NBD; return pos; }
          return -1;
        }
        if (buf.readUInt32BE(pos) === O.QEVM_MAGIC && buf.readUInt32BE(pos + 4) === 3 && this.stats.mode !== 'nbd') {
          this.stats.mode = 'qevm';
          this.raw(buf, pos, pos + 8, O.T_STRUCTURE);
          this.state = S_PRERAM;
          return pos + 8;
        }
        this.state = this.stats.mode === 'qevm' ? S_GENERIC : S_NBD;
        if (this.state === S_GENERIC) this.loseSync('not a QEVM v3 stream');
        return pos;
      }
      case S_PRERAM: {
        // The configuration section's layout depends on the QEMU version; find the first START of
        // section "ram" (01 <be32 id> 03 'ram' <be32 instance> <be32 version=4>) or "block"
        // (01 <be32 id> 05 'block' <be32 instance> <be32 version=1>), which S_TOP then parses.
        let from = pos;
        for (;;) {
          const r = buf.indexOf(RAM_IDSTR, from);
          const b = buf.indexOf(BLOCK_IDSTR, from);
          const isRam = r >= 0 && (b < 0 || r < b);
          const i = isRam ? r : b;
          const hdrEnd = i + (isRam ? RAM_IDSTR.length : BLOCK_IDSTR.length) + 8;
          if (i < 0 || hdrEnd > end) {
            const keep = final ? end : Math.max(pos, end - 20);
            this.preramScanned += keep - pos;
            this.raw(buf, pos, keep, O.T_STRUCTURE);
            if (this.preramScanned > PRERAM_SCAN_LIMIT) this.loseSync('no RAM section');
            return keep === pos ? -1 : keep;
          }
          if (i - 5 >= pos && buf[i - 5] === 0x01 && buf.readUInt32BE(hdrEnd - 4) === (isRam ? RAM_VERSION : BLOCK_VERSION)) {
            this.raw(buf, pos, i - 5, O.T_STRUCTURE);
            this.state = S_TOP;
            return i - 5;
          }
          from = i + 1;
        }
      }
      case S_RAM_MEMSIZE: {
        if (avail < 8) return -1;
        const lo = buf.readUInt32BE(pos + 4);
        if ((lo & 0xfff) !== O.RAM_MEM_SIZE) { this.loseSync('bad RAM setup'); return pos; }
        this.memRemaining = buf.readUInt32BE(pos) * 4294967296 + (lo - O.RAM_MEM_SIZE);
        this.raw(buf, pos, pos + 8, O.T_STRUCTURE);
        this.state = this.memRemaining > 0 ? S_RAM_BLOCKS : S_RAM_RECORDS;
        return pos + 8;
      }
      case S_RAM_BLOCKS: {
        if (avail < 1) return -1;
        const len = buf[pos];
        if (avail < 1 + len + 8) return -1;
        const name = buf.toString('latin1', pos + 1, pos + 1 + len);
        const used = buf.readUInt32BE(pos + 1 + len) * 4294967296 + buf.readUInt32BE(pos + 5 + len);
        if (len === 0 || used > this.memRemaining || this.blocks.size > 1024) { this.loseSync('bad RAM block list'); return pos; }
        this.memRemaining -= used;
        this.blocks.set(name, { name, ordinal: this.blocks.size, usedLength: used, prev: new PrevTable() });
        this.raw(buf, pos, pos + 9 + len, O.T_STRUCTURE);
        if (this.memRemaining === 0) this.state = S_RAM_RECORDS;
        return pos + 9 + len;
      }
      case S_RAM_RECORDS:
        return this.ramRecord(buf, pos, end);
      case S_FOOTER: {
        if (avail < 5) return -1;
        if (buf[pos] === 0x7e && buf.readUInt32BE(pos + 1) === this.curSectionId) {
          this.raw(buf, pos, pos + 5, O.T_STRUCTURE);
          this.state = S_TOP;
          return pos + 5;
        }
        this.state = S_TOP; // streams without section footers
        return pos;
      }
      case S_TOP: {
        const type = buf[pos];
        if (type === 0x02 || type === 0x03) {
          if (avail < 5) return -1;
          const id = buf.readUInt32BE(pos + 1);
          if (id === this.ramSectionId) this.state = S_RAM_RECORDS;
          else if (id === this.blockSectionId) this.state = S_BLOCK_RECORDS;
          else { this.loseSync('non-RAM iterable section'); return pos; }
          this.curSectionId = id;
          this.raw(buf, pos, pos + 5, O.T_STRUCTURE);
          return pos + 5;
        }
        if (type === 0x01) return this.sectionStart(buf, pos, end);
        if (type === 0x08) {
          if (avail < 5) return -1;
          const len = buf.readUInt16BE(pos + 3);
          if (avail < 5 + len) return -1;
          this.raw(buf, pos, pos + 5 + len, O.T_STRUCTURE);
          return pos + 5 + len;
        }
        // Device state (FULL), EOF + vmdesc, or anything unknown: opaque from here on.
        this.state = S_GENERIC;
        if (type !== 0x04 && type !== 0x00) this.loseSync(`unexpected section type 0x${type.toString(16)}`);
        return pos;
      }
      case S_GENERIC: {
        const n = nextChunk(buf, pos, end, final);
        if (n === 0) return -1;
        this.chunk(buf, pos, pos + n);
        return pos + n;
      }
      case S_NBD:
        return this.nbdStep(buf, pos, end, final);
      case S_NBD_WRITE:
        return this.nbdData(buf, pos, end, final);
      case S_BLOCK_RECORDS:
        return this.blockRecord(buf, pos, end);
      case S_BLOCK_DATA:
        return this.blockData(buf, pos, end);
    }
    throw new Error(`bad parser state ${this.state}`);
  }

  /**
   * QEMU_VM_SECTION_START: 01 <be32 id> <u8 len> <idstr> <be32 instance> <be32 version>. Sections
   * "ram" and "block" are parsed; another one before RAM is scanned over as the pre-RAM part is,
   * and after RAM it makes the rest of the stream opaque.
   */
  private sectionStart(buf: Buffer, pos: number, end: number): number {
    if (end - pos < 6) return -1;
    const len = buf[pos + 5];
    const hdrEnd = pos + 6 + len + 8;
    if (hdrEnd > end) return -1;
    const id = buf.readUInt32BE(pos + 1);
    const version = buf.readUInt32BE(hdrEnd - 4);
    const idstr = buf.toString('latin1', pos + 6, pos + 6 + len);
    if (idstr === 'ram' && version === RAM_VERSION && this.ramSectionId < 0 && id !== this.blockSectionId) {
      this.ramSectionId = id;
      this.state = S_RAM_MEMSIZE;
    } else if (idstr === 'block' && version === BLOCK_VERSION && this.blockSectionId < 0 && id !== this.ramSectionId) {
      this.blockSectionId = id;
      this.state = S_BLOCK_RECORDS;
    } else if (this.ramSectionId < 0) {
      this.raw(buf, pos, pos + 1, O.T_STRUCTURE);
      this.state = S_PRERAM;
      return pos + 1;
    } else {
      this.loseSync(`unexpected section "${idstr}"`);
      return pos;
    }
    this.curSectionId = id;
    this.raw(buf, pos, hdrEnd, O.T_STRUCTURE);
    return hdrEnd;
  }

  /** One record of the block-migration section (DEVICE_BLOCK header, PROGRESS or EOS). */
  private blockRecord(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    if (avail < 8) return -1;
    const hi = buf.readUInt32BE(pos);
    const lo = buf.readUInt32BE(pos + 4);
    const flags = lo & BLK_FLAGS_MASK;
    if (flags === BLK_EOS || flags === BLK_PROGRESS) {
      this.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      if (flags === BLK_EOS) this.state = S_FOOTER;
      return pos + 8;
    }
    if (flags !== BLK_DEVICE_BLOCK && flags !== (BLK_DEVICE_BLOCK | BLK_ZERO_BLOCK)) {
      this.loseSync(`unknown block-migration flags 0x${flags.toString(16)}`);
      return pos;
    }
    if (avail < 9) return -1;
    const hdrEnd = pos + 9 + buf[pos + 8];
    if (hdrEnd > end) return -1;
    this.raw(buf, pos, hdrEnd, O.T_STRUCTURE);
    if (flags === BLK_DEVICE_BLOCK) {
      // Keyed by the disk offset (sector << 9, in 4 KiB pages), so a block re-sent in a later
      // round is a delta against its previous version. Several disks share the key space: a
      // collision only costs a worse delta base, both sides see the same table.
      this.blkIndex = hi * 2 ** 20 + Math.floor((lo - flags) / PAGE_SIZE);
      this.blkRemaining = BLK_BLOCK_SIZE;
      this.state = S_BLOCK_DATA;
    }
    return hdrEnd;
  }

  /** One 4 KiB page of a block-migration data block, through the same paths as NBD writes. */
  private blockData(buf: Buffer, pos: number, end: number): number {
    if (end - pos < PAGE_SIZE) return -1;
    if (this.blkIndex < O.MAX_PAGE_INDEX) this.page(O.OP_KPAGE_LIT, buf, 0, 0, this.blkIndex, pos, this.nbdPrev, this.blkIndex);
    else this.chunk(buf, pos, pos + PAGE_SIZE);
    this.blkIndex++;
    this.blkRemaining -= PAGE_SIZE;
    if (this.blkRemaining === 0) this.state = S_BLOCK_RECORDS;
    return pos + PAGE_SIZE;
  }

  private ramRecord(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    if (avail < 8) return -1;
    const hi = buf.readUInt32BE(pos);
    const lo = buf.readUInt32BE(pos + 4);
    const flags = lo & 0xfff;
    if (flags === O.RAM_EOS) {
      this.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      this.curSectionId = this.ramSectionId;
      this.state = S_FOOTER;
      return pos + 8;
    }
    if (flags === O.RAM_MULTIFD_FLUSH) {
      this.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      return pos + 8;
    }
    const kind = flags & ~O.RAM_CONTINUE;
    if (kind !== O.RAM_PAGE && kind !== O.RAM_ZERO && kind !== O.RAM_XBZRLE && kind !== O.RAM_COMPRESS) {
      this.loseSync(`unknown RAM flags 0x${flags.toString(16)}`);
      return pos;
    }
    let hdrEnd = pos + 8;
    let block = this.curBlock;
    if (!(flags & O.RAM_CONTINUE)) {
      if (avail < 9) return -1;
      const len = buf[pos + 8];
      if (avail < 9 + len) return -1;
      block = this.blocks.get(buf.toString('latin1', pos + 9, pos + 9 + len));
      hdrEnd = pos + 9 + len;
    }
    if (!block) { this.loseSync('page of an undeclared RAM block'); return pos; }
    const addr = hi * 4294967296 + (lo - flags);
    const idx = hi * 1048576 + (lo >>> 12);
    if (block.usedLength >= 0 && addr >= block.usedLength) { this.loseSync('page beyond its RAM block'); return pos; }
    let recEnd: number;
    if (kind === O.RAM_PAGE) recEnd = hdrEnd + PAGE_SIZE;
    else if (kind === O.RAM_ZERO) recEnd = hdrEnd + 1;
    else if (kind === O.RAM_XBZRLE) {
      if (end - hdrEnd < 3) return -1;
      recEnd = hdrEnd + 3 + buf.readUInt16BE(hdrEnd + 1);
    } else {
      if (end - hdrEnd < 4) return -1;
      recEnd = hdrEnd + 4 + buf.readUInt32BE(hdrEnd);
      if (recEnd - hdrEnd > 2 * PAGE_SIZE) { this.loseSync('bad compressed page'); return pos; }
    }
    if (recEnd > end) return -1;
    this.curBlock = block;
    this.trackRound(block, addr, kind === O.RAM_ZERO);
    const round = this.stats.currentRound;
    const opBefore = this.w.len;
    if (kind === O.RAM_PAGE) {
      this.page(O.OP_QPAGE_LIT, buf, pos, hdrEnd, -1, hdrEnd, block.prev, idx);
    } else if (kind === O.RAM_ZERO) {
      this.w.u8(O.OP_QZERO);
      this.w.bytes(buf, pos, recEnd);
      this.batchRaw += recEnd - pos;
      this.stats.add(O.T_ZERO, recEnd - pos, this.w.len - opBefore);
      if (buf[hdrEnd] === 0) block.prev.setZero(idx);
      else block.prev.clear(idx);
    } else {
      // QEMU-side XBZRLE/compressed pages: the content is not known here, so both sides forget
      // the page. This is an op, not raw bytes, so the receiver follows the block change too.
      this.w.u8(O.OP_QOTHER);
      this.w.bytes(buf, pos, hdrEnd);
      this.w.varint(recEnd - hdrEnd);
      this.w.bytes(buf, hdrEnd, recEnd);
      this.batchRaw += recEnd - pos;
      this.stats.add(O.T_STRUCTURE, recEnd - pos, this.w.len - opBefore);
      block.prev.clear(idx);
    }
    if (round) {
      round.rawBytes += recEnd - pos;
      round.opBytes += this.w.len - opBefore;
    }
    return recEnd;
  }

  /** A new pre-copy round starts when the scan position (block order, address) moves backwards. */
  private trackRound(block: Block, addr: number, zero: boolean): void {
    const p = block.ordinal * 2 ** 42 + addr;
    if (p <= this.lastPos || !this.stats.currentRound) this.stats.startRound(Date.now());
    this.lastPos = p;
    const r = this.stats.currentRound!;
    r.endMs = Date.now();
    if (zero) r.zeroPages++;
    else r.pages++;
  }

  // ---------------------------------------------------------------- NBD

  private nbdStep(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    if (avail < 4) {
      if (!final) return -1;
      this.raw(buf, pos, end, O.T_STRUCTURE);
      return end;
    }
    const magic = buf.readUInt32BE(pos);
    if (magic === O.NBD_REQUEST_MAGIC || magic === O.NBD_EXT_REQUEST_MAGIC) {
      const ext = magic === O.NBD_EXT_REQUEST_MAGIC;
      const hlen = ext ? 32 : 28;
      if (avail < hlen) return final ? this.nbdSkip(buf, pos, end, final) : -1;
      const type = buf.readUInt16BE(pos + 6);
      const offset = buf.readUInt32BE(pos + 16) * 4294967296 + buf.readUInt32BE(pos + 20);
      const length = ext ? buf.readUInt32BE(pos + 24) * 4294967296 + buf.readUInt32BE(pos + 28) : buf.readUInt32BE(pos + 24);
      if (type > 16 || (type === O.NBD_CMD_WRITE && length > MAX_NBD_WRITE)) return this.nbdSkip(buf, pos, end, final);
      this.stats.mode = 'nbd';
      this.raw(buf, pos, pos + hlen, O.T_STRUCTURE);
      if (type === O.NBD_CMD_WRITE && length > 0) {
        this.nbdRemaining = length;
        this.nbdAligned = offset % PAGE_SIZE === 0;
        this.nbdIndex = Math.floor(offset / PAGE_SIZE);
        this.state = S_NBD_WRITE;
      }
      return pos + hlen;
    }
    return this.nbdSkip(buf, pos, end, final);
  }

  /** Out of NBD sync (option negotiation, or not NBD at all): chunk generically up to the next magic. */
  private nbdSkip(buf: Buffer, pos: number, end: number, final: boolean): number {
    const m = buf.indexOf(NBD_MAGIC, pos + 1);
    // Without a magic in sight, keep the last 3 bytes back: they may be the start of one.
    const stop = m < 0 || m > end ? (final ? end : Math.max(pos + 1, end - 3)) : m;
    let p = pos;
    while (p < stop) {
      const n = nextChunk(buf, p, stop, final || m >= 0);
      if (n === 0) break;
      this.chunk(buf, p, p + n);
      p += n;
    }
    return p === pos ? -1 : p;
  }

  private nbdData(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    if (this.nbdAligned && this.nbdRemaining >= PAGE_SIZE) {
      if (avail < PAGE_SIZE) return final ? this.nbdTail(buf, pos, end) : -1;
      this.page(O.OP_KPAGE_LIT, buf, 0, 0, this.nbdIndex, pos, this.nbdPrev, this.nbdIndex);
      this.nbdIndex++;
      this.nbdRemaining -= PAGE_SIZE;
      if (this.nbdRemaining === 0) this.state = S_NBD;
      return pos + PAGE_SIZE;
    }
    // Unaligned or tail data: content-defined chunks, still deduplicated.
    const lim = Math.min(avail, this.nbdRemaining);
    const n = nextChunk(buf, pos, pos + lim, final || lim === this.nbdRemaining);
    if (n === 0) return -1;
    this.chunk(buf, pos, pos + n);
    this.nbdRemaining -= n;
    if (this.nbdRemaining === 0) this.state = S_NBD;
    return pos + n;
  }

  private nbdTail(buf: Buffer, pos: number, end: number): number {
    const n = Math.min(end - pos, this.nbdRemaining);
    this.raw(buf, pos, pos + n, O.T_STRUCTURE);
    this.nbdRemaining -= n;
    this.nbdAligned = false;
    if (this.nbdRemaining === 0) this.state = S_NBD;
    return pos + n;
  }
}
