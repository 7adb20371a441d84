// The "block" section of a QEVM stream (QEMU 7.2 block migration, migration/block.c): records
// DEVICE_BLOCK (a header, then 1 MiB of disk data unless ZERO_BLOCK), PROGRESS and EOS. Its data
// blocks go through the same keyed-page path as NBD writes, so a block re-sent in a later round
// is a delta against its previous version.
import { PAGE_SIZE } from '../context.ts';
import * as O from '../ops.ts';
import type { PrevTable } from '../prev.ts';
import type { OpOutput } from './op-output.ts';
import { S_BLOCK_DATA, S_BLOCK_RECORDS, S_FOOTER, type ParseState } from './parse-state.ts';

// Each record starts with be64 (sector << 9) | flags.
const BLK_DEVICE_BLOCK = 0x01;
const BLK_EOS = 0x02;
const BLK_PROGRESS = 0x04;
const BLK_ZERO_BLOCK = 0x08;
const BLK_FLAGS_MASK = 0x1ff;
const BLK_BLOCK_SIZE = 1 << 20; // BLK_MIG_BLOCK_SIZE: every non-zero DEVICE_BLOCK carries this much

export class BlockMigrationParser {
  private readonly p: ParseState;
  private readonly out: OpOutput;
  /** Previous version of each disk page, by 4 KiB index (the session's keyed-page table). */
  private readonly prev: PrevTable;
  // The 1 MiB data block being split into pages.
  private remaining = 0;
  private index = 0;

  constructor(p: ParseState, out: OpOutput, keyedPrev: PrevTable) {
    this.p = p;
    this.out = out;
    this.prev = keyedPrev;
  }

  /** One record of the block-migration section (DEVICE_BLOCK header, PROGRESS or EOS). */
  record(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    if (avail < 8) return -1;
    const hi = buf.readUInt32BE(pos);
    const lo = buf.readUInt32BE(pos + 4);
    const flags = lo & BLK_FLAGS_MASK;
    if (flags === BLK_EOS || flags === BLK_PROGRESS) {
      this.out.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      if (flags === BLK_EOS) this.p.state = S_FOOTER;
      return pos + 8;
    }
    if (flags !== BLK_DEVICE_BLOCK && flags !== (BLK_DEVICE_BLOCK | BLK_ZERO_BLOCK)) {
      this.p.loseSync(`unknown block-migration flags 0x${flags.toString(16)}`);
      return pos;
    }
    if (avail < 9) return -1;
    const hdrEnd = pos + 9 + buf[pos + 8];
    if (hdrEnd > end) return -1;
    this.out.raw(buf, pos, hdrEnd, O.T_STRUCTURE);
    if (flags === BLK_DEVICE_BLOCK) {
      // Keyed by the disk offset (sector << 9, in 4 KiB pages), so a block re-sent in a later
      // round is a delta against its previous version. Several disks share the key space: a
      // collision only costs a worse delta base, both sides see the same table.
      this.index = hi * 2 ** 20 + Math.floor((lo - flags) / PAGE_SIZE);
      this.remaining = BLK_BLOCK_SIZE;
      this.p.state = S_BLOCK_DATA;
    }
    return hdrEnd;
  }

  /** One 4 KiB page of a block-migration data block, through the same paths as NBD writes. */
  data(buf: Buffer, pos: number, end: number): number {
    if (end - pos < PAGE_SIZE) return -1;
    if (this.index < O.MAX_PAGE_INDEX) this.out.page(O.OP_KPAGE_LIT, buf, 0, 0, this.index, pos, this.prev, this.index);
    else this.out.chunk(buf, pos, pos + PAGE_SIZE);
    this.index++;
    this.remaining -= PAGE_SIZE;
    if (this.remaining === 0) this.p.state = S_BLOCK_RECORDS;
    return pos + PAGE_SIZE;
  }
}
