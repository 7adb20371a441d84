// Where the encoder's parse of one session stands. The stream parsers (QEVM, block migration,
// NBD, generic) hand the stream to each other by setting `state` (a QEVM stream contains a
// block-migration section; any parser may give up and go generic), so the state is one shared
// value rather than one per parser.
import type { SessionStats } from '../stats.ts';

// QEVM (qevm-parser.ts): header sniffing, the configuration before RAM, the RAM setup, RAM records,
// section footers and the top level between sections.
export const S_SNIFF = 0;
export const S_PRERAM = 1;
export const S_RAM_MEMSIZE = 2;
export const S_RAM_BLOCKS = 3;
export const S_RAM_RECORDS = 4;
export const S_FOOTER = 5;
export const S_TOP = 6;
// Content-defined chunks, for unknown streams and for the rest of a stream whose parse failed.
export const S_GENERIC = 7;
// NBD (nbd-parser.ts): between requests, and inside a WRITE's data.
export const S_NBD = 8;
export const S_NBD_WRITE = 9;
// QEMU block migration (block-migration-parser.ts): records, and inside a 1 MiB data block.
export const S_BLOCK_RECORDS = 10;
export const S_BLOCK_DATA = 11;

export class ParseState {
  state: number;
  private readonly stats: SessionStats;

  constructor(stats: SessionStats, initial: number) {
    this.stats = stats;
    this.state = initial;
  }

  /** The parser no longer trusts its position: generic for the rest of the stream (the first reason is kept). */
  loseSync(why: string): void {
    if (!this.stats.syncLost) this.stats.syncLost = why;
    this.state = S_GENERIC;
  }
}
