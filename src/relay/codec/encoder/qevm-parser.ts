// QEMU's migration stream (QEVM v3), at the level of sections: the header, the configuration
// before RAM (passed through: its layout varies by QEMU version), section starts, PART/END
// headers and footers, QEMU commands. The records inside the "ram" and "block" sections are
// parsed by their own section parsers. Device state (FULL sections), EOF and the JSON vmdesc are
// left to generic mode: opaque, but deduplicated and compressed.
import * as O from '../ops.ts';
import type { PrevTable } from '../prev.ts';
import type { SessionStats } from '../stats.ts';
import { BlockMigrationParser } from './block-migration-parser.ts';
import type { OpOutput } from './op-output.ts';
import * as S from './parse-state.ts';
import { RamSectionParser } from './ram-section-parser.ts';

const RAM_IDSTR = Buffer.from([0x03, 0x72, 0x61, 0x6d]); // len=3 "ram"
const BLOCK_IDSTR = Buffer.from([0x05, 0x62, 0x6c, 0x6f, 0x63, 0x6b]); // len=5 "block"
const RAM_VERSION = 4;
const BLOCK_VERSION = 1;
const QEVM_PREFIX = Buffer.from('QEVM', 'latin1');
// A stream that shows no RAM section within this much is not parsed further.
const PRERAM_SCAN_LIMIT = 1 << 20;

export class QevmParser {
  private readonly p: S.ParseState;
  private readonly out: OpOutput;
  private readonly stats: SessionStats;
  private readonly ram: RamSectionParser;
  private readonly block: BlockMigrationParser;
  private ramSectionId = -1;
  private blockSectionId = -1;
  /** Section whose records are being parsed: its footer must carry this id. */
  private curSectionId = -1;
  private preramScanned = 0;

  constructor(p: S.ParseState, out: OpOutput, stats: SessionStats, keyedPrev: PrevTable) {
    this.p = p;
    this.out = out;
    this.stats = stats;
    // The RAM section's EOS: its footer must carry the RAM section's id.
    this.ram = new RamSectionParser(p, out, stats, () => { this.curSectionId = this.ramSectionId; });
    this.block = new BlockMigrationParser(p, out, keyedPrev);
  }

  /** The RAM blocks' per-page tables (the keyed-page table is the session encoder's). */
  get memoryBytes(): number {
    return this.ram.memoryBytes;
  }

  /** One step in any QEVM state; returns the new position, or -1 when more input is needed. */
  step(buf: Buffer, pos: number, end: number, final: boolean): number {
    switch (this.p.state) {
      case S.S_SNIFF:
        return this.sniff(buf, pos, end, final);
      case S.S_PRERAM:
        return this.preRam(buf, pos, end, final);
      case S.S_RAM_MEMSIZE:
        return this.ram.memSize(buf, pos, end);
      case S.S_RAM_BLOCKS:
        return this.ram.blockEntry(buf, pos, end);
      case S.S_RAM_RECORDS:
        return this.ram.record(buf, pos, end);
      case S.S_FOOTER:
        return this.footer(buf, pos, end);
      case S.S_TOP:
        return this.top(buf, pos, end);
      case S.S_BLOCK_RECORDS:
        return this.block.record(buf, pos, end);
      case S.S_BLOCK_DATA:
        return this.block.data(buf, pos, end);
    }
    throw new Error(`bad parser state ${this.p.state}`);
  }

  /** `auto` mode's first bytes: the QEVM v3 header, or not QEMU (then NBD-aware generic). */
  private sniff(buf: Buffer, pos: number, end: number, final: boolean): number {
    const avail = end - pos;
    if (avail < 8) {
      if (final) { this.p.state = S.S_GENERIC; return pos; }
      // Not QEVM as soon as the first bytes disagree with the magic.
      for (let i = 0; i < avail && i < 4; i++) if (buf[pos + i] !== QEVM_PREFIX[i]) { this.p.state = S.S_NBD; return pos; }
      return -1;
    }
    if (buf.readUInt32BE(pos) === O.QEVM_MAGIC && buf.readUInt32BE(pos + 4) === 3 && this.stats.mode !== 'nbd') {
      this.stats.mode = 'qevm';
      this.out.raw(buf, pos, pos + 8, O.T_STRUCTURE);
      this.p.state = S.S_PRERAM;
      return pos + 8;
    }
    this.p.state = this.stats.mode === 'qevm' ? S.S_GENERIC : S.S_NBD;
    if (this.p.state === S.S_GENERIC) this.p.loseSync('not a QEVM v3 stream');
    return pos;
  }

  /**
   * The configuration section's layout depends on the QEMU version; find the first START of
   * section "ram" (01 <be32 id> 03 'ram' <be32 instance> <be32 version=4>) or "block"
   * (01 <be32 id> 05 'block' <be32 instance> <be32 version=1>), which S_TOP then parses.
   */
  private preRam(buf: Buffer, pos: number, end: number, final: boolean): number {
    let from = pos;
    for (;;) {
      const r = buf.indexOf(RAM_IDSTR, from);
      const b = buf.indexOf(BLOCK_IDSTR, from);
      const isRam = r >= 0 && (b < 0 || r < b);
      const i = isRam ? r : b;
      const hdrEnd = i + (isRam ? RAM_IDSTR.length : BLOCK_IDSTR.length) + 8;
      if (i < 0 || hdrEnd > end) {
        // Keep back enough for a section start that the input cuts in two.
        const keep = final ? end : Math.max(pos, end - 20);
        this.preramScanned += keep - pos;
        this.out.raw(buf, pos, keep, O.T_STRUCTURE);
        if (this.preramScanned > PRERAM_SCAN_LIMIT) this.p.loseSync('no RAM section');
        return keep === pos ? -1 : keep;
      }
      if (i - 5 >= pos && buf[i - 5] === 0x01 && buf.readUInt32BE(hdrEnd - 4) === (isRam ? RAM_VERSION : BLOCK_VERSION)) {
        this.out.raw(buf, pos, i - 5, O.T_STRUCTURE);
        this.p.state = S.S_TOP;
        return i - 5;
      }
      from = i + 1;
    }
  }

  /** After a section's records: its footer (7e <be32 id>), if the stream has footers. */
  private footer(buf: Buffer, pos: number, end: number): number {
    if (end - pos < 5) return -1;
    if (buf[pos] === 0x7e && buf.readUInt32BE(pos + 1) === this.curSectionId) {
      this.out.raw(buf, pos, pos + 5, O.T_STRUCTURE);
      this.p.state = S.S_TOP;
      return pos + 5;
    }
    this.p.state = S.S_TOP; // streams without section footers
    return pos;
  }

  /** Between sections: a PART/END header (02/03 <be32 id>), a START (01), a command (08), or the end of iterative sections. */
  private top(buf: Buffer, pos: number, end: number): number {
    const avail = end - pos;
    const type = buf[pos];
    if (type === 0x02 || type === 0x03) {
      if (avail < 5) return -1;
      const id = buf.readUInt32BE(pos + 1);
      if (id === this.ramSectionId) this.p.state = S.S_RAM_RECORDS;
      else if (id === this.blockSectionId) this.p.state = S.S_BLOCK_RECORDS;
      else { this.p.loseSync('non-RAM iterable section'); return pos; }
      this.curSectionId = id;
      this.out.raw(buf, pos, pos + 5, O.T_STRUCTURE);
      return pos + 5;
    }
    if (type === 0x01) return this.sectionStart(buf, pos, end);
    if (type === 0x08) {
      if (avail < 5) return -1;
      const len = buf.readUInt16BE(pos + 3);
      if (avail < 5 + len) return -1;
      this.out.raw(buf, pos, pos + 5 + len, O.T_STRUCTURE);
      return pos + 5 + len;
    }
    // Device state (FULL), EOF + vmdesc, or anything unknown: opaque from here on.
    this.p.state = S.S_GENERIC;
    if (type !== 0x04 && type !== 0x00) this.p.loseSync(`unexpected section type 0x${type.toString(16)}`);
    return pos;
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
      this.p.state = S.S_RAM_MEMSIZE;
    } else if (idstr === 'block' && version === BLOCK_VERSION && this.blockSectionId < 0 && id !== this.ramSectionId) {
      this.blockSectionId = id;
      this.p.state = S.S_BLOCK_RECORDS;
    } else if (this.ramSectionId < 0) {
      this.out.raw(buf, pos, pos + 1, O.T_STRUCTURE);
      this.p.state = S.S_PRERAM;
      return pos + 1;
    } else {
      this.p.loseSync(`unexpected section "${idstr}"`);
      return pos;
    }
    this.curSectionId = id;
    this.out.raw(buf, pos, hdrEnd, O.T_STRUCTURE);
    return hdrEnd;
  }
}
