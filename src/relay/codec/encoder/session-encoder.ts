// Sender side of the codec for one session (one migration connection). It parses the byte stream
// incrementally (QEMU QEVM v3, NBD requests, or nothing), turns pages/blocks/chunks into cache
// references, deltas or literals, and emits batches of ops. The parse is only a hint: every byte
// is reproduced exactly whatever the parser believed, so losing sync costs ratio, never data.
//
// This file holds the session's input side: joining reads into complete records, the parse loop
// and which parser runs. The parsers are qevm-parser.ts (with ram-section-parser.ts and
// block-migration-parser.ts), nbd-parser.ts and generic-parser.ts; the ops and batches they
// produce are made in op-output.ts.
import type { CodecContext } from '../context.ts';
import * as O from '../ops.ts';
import { PrevTable } from '../prev.ts';
import { SessionStats } from '../stats.ts';
import { genericStep } from './generic-parser.ts';
import { NbdParser } from './nbd-parser.ts';
import { OpOutput, type Batch } from './op-output.ts';
import { ParseState, S_GENERIC, S_NBD, S_NBD_WRITE, S_SNIFF } from './parse-state.ts';
import { QevmParser } from './qevm-parser.ts';

export type { Batch };

export const STREAM_MODES = ['auto', 'qevm', 'nbd', 'generic'] as const;
export type StreamMode = (typeof STREAM_MODES)[number];

/** A mode from the command line (`--mode`, `--listen ...@MODE`); unset is `auto`. */
export function parseStreamMode(v: string | undefined): StreamMode {
  const m = v ?? 'auto';
  if (!(STREAM_MODES as readonly string[]).includes(m)) throw new Error(`bad --mode ${m}`);
  return m as StreamMode;
}

export interface EncoderOptions {
  mode?: StreamMode;
  /** Emit a batch once its ops reach this size. */
  batchOpBytes?: number;
  /** ...or once it covers this much input (keeps latency bounded when dedup is high). */
  batchRawBytes?: number;
  /** Delta is used only if smaller than this; otherwise the literal page compresses as well. */
  deltaLimit?: number;
  /** References to content the receiver holds (cache, seeds); default true. */
  dedup?: boolean;
  /** XOR deltas of re-sent pages; default true. */
  deltas?: boolean;
  /** Newest cache entries the session may use (op-output.ts); 0: no cache, the stream is not
   *  parsed (parsing only serves the cache) and goes raw. Default: the whole cache. */
  cacheWindow?: number;
}

const EMPTY = Buffer.alloc(0);
/** How much of a new read first goes to finish an incomplete record (a page record, 4 KiB plus
 *  its header, fits). */
const STAGE_HEAD = 8 << 10;

export class SessionEncoder {
  readonly stats = new SessionStats();
  private readonly ctx: CodecContext;
  private readonly out: OpOutput;
  private readonly p: ParseState;
  private readonly qevm: QevmParser;
  private readonly nbd: NbdParser;
  // The per-page table of keyed pages: NBD writes and block-migration pages. The decoder keeps one
  // table per session for every keyed-page op (OP_KPAGE_*), and a session is either NBD or QEVM.
  private readonly keyedPrev = new PrevTable();
  private pending: Buffer = EMPTY;
  private staging: Buffer = Buffer.allocUnsafeSlow(1 << 17);
  private ended = false;

  constructor(ctx: CodecContext, onBatch: (b: Batch) => void, opts: EncoderOptions = {}) {
    this.ctx = ctx;
    this.out = new OpOutput(ctx, this.stats, onBatch, {
      batchOpBytes: opts.batchOpBytes ?? 512 << 10,
      batchRawBytes: opts.batchRawBytes ?? 4 << 20,
      deltaLimit: opts.deltaLimit ?? 3584,
      ...(opts.dedup !== undefined ? { dedup: opts.dedup } : {}),
      ...(opts.deltas !== undefined ? { deltas: opts.deltas } : {}),
      ...(opts.cacheWindow !== undefined ? { cacheWindow: opts.cacheWindow } : {}),
    });
    const mode = opts.cacheWindow === 0 ? 'generic' : opts.mode ?? 'auto';
    this.stats.mode = mode;
    this.p = new ParseState(this.stats, mode === 'generic' ? S_GENERIC : mode === 'nbd' ? S_NBD : S_SNIFF);
    this.qevm = new QevmParser(this.p, this.out, this.stats, this.keyedPrev);
    this.nbd = new NbdParser(this.p, this.out, this.stats, this.keyedPrev);
  }

  /** Memory of this session's per-page tables and buffers (the shared cache is not included). */
  get memoryBytes(): number {
    return this.keyedPrev.memoryBytes + this.staging.length + this.out.memoryBytes + this.qevm.memoryBytes;
  }

  /** The sender's work mode (adaptive.ts): what pages get from now on, and its name for the stats. */
  setEffort(effort: number, mode: string): void {
    this.out.effort = effort;
    this.stats.effortMode = mode;
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
    if (this.out.opLen) this.out.emit();
    if (this.ctx.active === this) this.ctx.active = undefined;
  }

  write(chunk: Buffer): void {
    if (this.ended) throw new Error('write after end');
    this.claim();
    this.stats.bytesIn += chunk.length;
    // An incomplete record from the last read is finished in the staging buffer with only as much
    // of the new input as it needs (the head of the chunk, more if the record is longer); the rest
    // of the chunk is parsed where it is. Joining the whole chunk instead copied the entire stream
    // once more (a record straddles nearly every 64 KiB read): measured, 1/3 of the encoder's
    // copying.
    let off = 0;
    let take = STAGE_HEAD;
    while (this.pending.length && off < chunk.length) {
      const n = Math.min(chunk.length - off, take);
      const had = this.pending.length;
      const stage = this.stage(chunk, off, n);
      const pos = this.parse(stage, 0, stage.length, false);
      if (pos >= had) { off += pos - had; this.pending = EMPTY; break; }
      this.keepPending(stage, pos);
      off += n;
      take *= 4;
    }
    if (!this.pending.length) this.keepPending(chunk, this.parse(chunk, off, chunk.length, false));
    if (this.out.full) this.out.emit();
  }

  /** `pending` followed by chunk[off, off+n), at the start of the staging buffer (no allocation
   *  once it is large enough). `pending` may itself live there. */
  private stage(chunk: Buffer, off: number, n: number): Buffer {
    const need = this.pending.length + n;
    if (this.staging.length < need) {
      const next = Buffer.allocUnsafeSlow(Math.max(need, this.staging.length * 2));
      this.pending.copy(next, 0);
      this.staging = next;
    } else if (this.pending.buffer !== this.staging.buffer || this.pending.byteOffset !== this.staging.byteOffset) {
      this.pending.copy(this.staging, 0);
    }
    chunk.copy(this.staging, this.pending.length, off, off + n);
    return this.staging.subarray(0, need);
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
    if (this.pending.length && (force || this.p.state === S_GENERIC)) {
      // Between NBD requests (S_NBD) nothing is lost: the NBD parser finds the next request by its
      // magic, so the option negotiation, where the client waits for each reply, keeps the parse.
      if (this.p.state !== S_GENERIC && this.p.state !== S_NBD) this.p.loseSync('stalled mid-record');
      const buf = this.pending;
      this.pending = EMPTY;
      const pos = this.parse(buf, 0, buf.length, true);
      this.out.raw(buf, pos, buf.length, O.T_STRUCTURE); // generic consumes all; this is a safety net
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
      this.out.raw(buf, 0, buf.length, O.T_STRUCTURE);
    }
    this.ended = true;
    this.emitPending();
  }

  /** Consumes complete units of buf[pos, end); returns the position of the first unconsumed byte. */
  private parse(buf: Buffer, pos: number, end: number, final: boolean): number {
    for (;;) {
      if (this.out.full) this.out.emit();
      if (pos >= end) return pos;
      const next = this.step(buf, pos, end, final);
      if (next < 0) return pos; // needs more input
      pos = next;
    }
  }

  /** One parser step; returns the new position, or -1 when more input is needed. */
  private step(buf: Buffer, pos: number, end: number, final: boolean): number {
    switch (this.p.state) {
      case S_GENERIC:
        return genericStep(this.out, buf, pos, end, final);
      case S_NBD:
        return this.nbd.request(buf, pos, end, final);
      case S_NBD_WRITE:
        return this.nbd.data(buf, pos, end, final);
      default:
        return this.qevm.step(buf, pos, end, final);
    }
  }
}
