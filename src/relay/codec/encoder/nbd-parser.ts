// NBD mode (a disk mirror's stream, `@nbd`, and `auto` for anything that is not QEVM): request
// headers (simple and extended) are found by their magic; the data of 4 KiB-aligned WRITEs goes
// out as keyed pages (dedup against the cache and the seeds, delta against the previous write of
// the same block); option negotiation, unaligned data and everything else as generic chunks.
import { nextChunk } from '../cdc.ts';
import { PAGE_SIZE } from '../context.ts';
import * as O from '../ops.ts';
import type { PrevTable } from '../prev.ts';
import type { SessionStats } from '../stats.ts';
import type { OpOutput } from './op-output.ts';
import { S_NBD, S_NBD_WRITE, type ParseState } from './parse-state.ts';

const NBD_MAGIC = Buffer.from([0x25, 0x60, 0x95, 0x13]);
// A larger WRITE is taken for a false magic match rather than believed.
const MAX_NBD_WRITE = 64 << 20;

export class NbdParser {
  private readonly p: ParseState;
  private readonly out: OpOutput;
  private readonly stats: SessionStats;
  /** Previous version of each written block, by 4 KiB index (shared with block migration). */
  private readonly prev: PrevTable;
  private remaining = 0;
  private index = 0;
  private aligned = false;

  constructor(p: ParseState, out: OpOutput, stats: SessionStats, keyedPrev: PrevTable) {
    this.p = p;
    this.out = out;
    this.stats = stats;
    this.prev = keyedPrev;
  }

  /** Between requests (S_NBD): a request header, or bytes up to the next magic. */
  request(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    if (avail < 4) {
      if (!final) return -1;
      this.out.raw(buf, pos, end, O.T_STRUCTURE);
      return end;
    }
    const magic = buf.readUInt32BE(pos);
    if (magic === O.NBD_REQUEST_MAGIC || magic === O.NBD_EXT_REQUEST_MAGIC) {
      const ext = magic === O.NBD_EXT_REQUEST_MAGIC;
      const hlen = ext ? 32 : 28;
      if (avail < hlen) return final ? this.skip(buf, pos, end, final) : -1;
      const type = buf.readUInt16BE(pos + 6);
      const offset = buf.readUInt32BE(pos + 16) * 4294967296 + buf.readUInt32BE(pos + 20);
      const length = ext ? buf.readUInt32BE(pos + 24) * 4294967296 + buf.readUInt32BE(pos + 28) : buf.readUInt32BE(pos + 24);
      if (type > 16 || (type === O.NBD_CMD_WRITE && length > MAX_NBD_WRITE)) return this.skip(buf, pos, end, final);
      this.stats.mode = 'nbd';
      this.out.raw(buf, pos, pos + hlen, O.T_STRUCTURE);
      if (type === O.NBD_CMD_WRITE && length > 0) {
        this.remaining = length;
        this.aligned = offset % PAGE_SIZE === 0;
        this.index = Math.floor(offset / PAGE_SIZE);
        this.p.state = S_NBD_WRITE;
      }
      return pos + hlen;
    }
    return this.skip(buf, pos, end, final);
  }

  /** Out of NBD sync (option negotiation, or not NBD at all): chunk generically up to the next magic. */
  private skip(buf: Buffer, pos: number, end: number, final: boolean): number {
    const m = buf.indexOf(NBD_MAGIC, pos + 1);
    // Without a magic in sight, keep the last 3 bytes back: they may be the start of one.
    const stop = m < 0 || m > end ? (final ? end : Math.max(pos + 1, end - 3)) : m;
    let p = pos;
    while (p < stop) {
      const n = nextChunk(buf, p, stop, final || m >= 0);
      if (n === 0) break;
      this.out.chunk(buf, p, p + n);
      p += n;
    }
    return p === pos ? -1 : p;
  }

  /** Inside a WRITE's data (S_NBD_WRITE): a keyed page if aligned, else a chunk. */
  data(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    if (this.aligned && this.remaining >= PAGE_SIZE) {
      if (avail < PAGE_SIZE) return final ? this.tail(buf, pos, end) : -1;
      this.out.page(O.OP_KPAGE_LIT, buf, 0, 0, this.index, pos, this.prev, this.index);
      this.index++;
      this.remaining -= PAGE_SIZE;
      if (this.remaining === 0) this.p.state = S_NBD;
      return pos + PAGE_SIZE;
    }
    // Unaligned or tail data: content-defined chunks, still deduplicated.
    const lim = Math.min(avail, this.remaining);
    const n = nextChunk(buf, pos, pos + lim, final || lim === this.remaining);
    if (n === 0) return -1;
    this.out.chunk(buf, pos, pos + n);
    this.remaining -= n;
    if (this.remaining === 0) this.p.state = S_NBD;
    return pos + n;
  }

  /** The input ended inside an aligned page: what there is goes raw, the rest as chunks. */
  private tail(buf: Buffer, pos: number, end: number): number {
    const n = Math.min(end - pos, this.remaining);
    this.out.raw(buf, pos, pos + n, O.T_STRUCTURE);
    this.remaining -= n;
    this.aligned = false;
    if (this.remaining === 0) this.p.state = S_NBD;
    return pos + n;
  }
}
