// The "ram" section of a QEVM stream: its setup (MEM_SIZE and the RAM block list) and every record
// of its PART/END sections: PAGE (4 KiB), ZERO (1 fill byte), CONTINUE/idstr, EOS, MULTIFD_FLUSH,
// and QEMU-side XBZRLE/COMPRESS records (passed through, the page is forgotten). It also counts
// the pre-copy rounds (stats.rounds) that the convergence advice reads.
import { PAGE_SIZE } from '../context.ts';
import * as O from '../ops.ts';
import { PrevTable } from '../prev.ts';
import type { SessionStats } from '../stats.ts';
import type { OpOutput } from './op-output.ts';
import { S_FOOTER, S_RAM_BLOCKS, S_RAM_RECORDS, type ParseState } from './parse-state.ts';

interface RamBlock {
  name: string;
  ordinal: number;
  usedLength: number; // -1 when not declared
  /** Previous version of each page of this block (the delta base). */
  prev: PrevTable;
}

// Bounds a crafted block list; a real guest has a handful of RAM blocks.
const MAX_RAM_BLOCKS = 1024;

export class RamSectionParser {
  private readonly p: ParseState;
  private readonly out: OpOutput;
  private readonly stats: SessionStats;
  /** Called at the section's EOS (the QEVM parser then expects the RAM section's footer). */
  private readonly onEos: () => void;
  /** Bytes of RAM the setup declared that the block list has not yet accounted for. */
  private memRemaining = 0;
  private readonly blocks = new Map<string, RamBlock>();
  /** The block of the last record (a CONTINUE record names none). */
  private curBlock: RamBlock | undefined;
  /** Scan position of the last page (block ordinal, address): going back means a new round. */
  private lastPos = -1;

  constructor(p: ParseState, out: OpOutput, stats: SessionStats, onEos: () => void) {
    this.p = p;
    this.out = out;
    this.stats = stats;
    this.onEos = onEos;
  }

  /** The per-page tables of all RAM blocks. */
  get memoryBytes(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.prev.memoryBytes;
    return n;
  }

  /** The setup's first record (S_RAM_MEMSIZE): the total RAM size with flag MEM_SIZE. */
  memSize(buf: Buffer, pos: number, end: number): number {
    if (end - pos < 8) return -1;
    const lo = buf.readUInt32BE(pos + 4);
    if ((lo & 0xfff) !== O.RAM_MEM_SIZE) { this.p.loseSync('bad RAM setup'); return pos; }
    this.memRemaining = buf.readUInt32BE(pos) * 4294967296 + (lo - O.RAM_MEM_SIZE);
    this.out.raw(buf, pos, pos + 8, O.T_STRUCTURE);
    this.p.state = this.memRemaining > 0 ? S_RAM_BLOCKS : S_RAM_RECORDS;
    return pos + 8;
  }

  /** One entry of the block list (S_RAM_BLOCKS): <u8 len> <idstr> <be64 used length>. */
  blockEntry(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    if (avail < 1) return -1;
    const len = buf[pos];
    if (avail < 1 + len + 8) return -1;
    const name = buf.toString('latin1', pos + 1, pos + 1 + len);
    const used = buf.readUInt32BE(pos + 1 + len) * 4294967296 + buf.readUInt32BE(pos + 5 + len);
    if (len === 0 || used > this.memRemaining || this.blocks.size > MAX_RAM_BLOCKS) { this.p.loseSync('bad RAM block list'); return pos; }
    this.memRemaining -= used;
    this.blocks.set(name, { name, ordinal: this.blocks.size, usedLength: used, prev: new PrevTable() });
    this.out.raw(buf, pos, pos + 9 + len, O.T_STRUCTURE);
    if (this.memRemaining === 0) this.p.state = S_RAM_RECORDS;
    return pos + 9 + len;
  }

  /** One RAM record (S_RAM_RECORDS); EOS hands the stream back to the section footer. */
  record(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    if (avail < 8) return -1;
    const hi = buf.readUInt32BE(pos);
    const lo = buf.readUInt32BE(pos + 4);
    const flags = lo & 0xfff;
    if (flags === O.RAM_EOS) {
      this.out.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      this.onEos();
      this.p.state = S_FOOTER;
      return pos + 8;
    }
    if (flags === O.RAM_MULTIFD_FLUSH) {
      this.out.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      return pos + 8;
    }
    const kind = flags & ~O.RAM_CONTINUE;
    if (kind !== O.RAM_PAGE && kind !== O.RAM_ZERO && kind !== O.RAM_XBZRLE && kind !== O.RAM_COMPRESS) {
      this.p.loseSync(`unknown RAM flags 0x${flags.toString(16)}`);
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
    if (!block) { this.p.loseSync('page of an undeclared RAM block'); return pos; }
    const addr = hi * 4294967296 + (lo - flags);
    const idx = hi * 1048576 + (lo >>> 12);
    if (block.usedLength >= 0 && addr >= block.usedLength) { this.p.loseSync('page beyond its RAM block'); return pos; }
    let recEnd: number;
    if (kind === O.RAM_PAGE) recEnd = hdrEnd + PAGE_SIZE;
    else if (kind === O.RAM_ZERO) recEnd = hdrEnd + 1;
    else if (kind === O.RAM_XBZRLE) {
      if (end - hdrEnd < 3) return -1;
      recEnd = hdrEnd + 3 + buf.readUInt16BE(hdrEnd + 1);
    } else {
      if (end - hdrEnd < 4) return -1;
      recEnd = hdrEnd + 4 + buf.readUInt32BE(hdrEnd);
      if (recEnd - hdrEnd > 2 * PAGE_SIZE) { this.p.loseSync('bad compressed page'); return pos; }
    }
    if (recEnd > end) return -1;
    this.curBlock = block;
    this.trackRound(block, addr, kind === O.RAM_ZERO);
    const round = this.stats.currentRound;
    const opBefore = this.out.opLen;
    if (kind === O.RAM_PAGE) {
      this.out.page(O.OP_QPAGE_LIT, buf, pos, hdrEnd, -1, hdrEnd, block.prev, idx);
    } else if (kind === O.RAM_ZERO) {
      this.out.qemuZero(buf, pos, recEnd);
      if (buf[hdrEnd] === 0) block.prev.setZero(idx);
      else block.prev.clear(idx);
    } else {
      this.out.qemuOpaque(buf, pos, hdrEnd, recEnd);
      block.prev.clear(idx);
    }
    if (round) this.stats.addToRound(round, recEnd - pos, this.out.opLen - opBefore);
    return recEnd;
  }

  /** A new pre-copy round starts when the scan position (block order, address) moves backwards. */
  private trackRound(block: RamBlock, addr: number, zero: boolean): void {
    const p = block.ordinal * 2 ** 42 + addr;
    if (p <= this.lastPos || !this.stats.currentRound) this.stats.startRound(Date.now());
    this.lastPos = p;
    const r = this.stats.currentRound!;
    r.endMs = Date.now();
    if (zero) r.zeroPages++;
    else r.pages++;
  }
}
