// The QEVM parser follows QEMU's block-migration section ("block", capability `block: true`): its
// 1 MiB disk blocks go through the keyed-page path (dedup, deltas against the block's previous
// version) and the RAM sections around it stay in sync. Streams are built here in QEMU 7.2's
// layout (migration/block.c); test/integration/relay-block-migration.test.ts runs a real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T_DEDUP, T_DELTA, T_GENERIC_LITERAL } from '../../../src/relay/codec/index.ts';
import { Rng } from '../../../src/relay/tools/index.ts';
import { pair, roundTrip } from './helpers.ts';

const PAGE = 4096;
const MIB = 1 << 20;
const RAM_ID = 2;
const BLOCK_ID = 1;

class Out {
  parts: Buffer[] = [];
  u8(v: number): this { this.parts.push(Buffer.from([v])); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); this.parts.push(b); return this; }
  u64(v: number): this { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); this.parts.push(b); return this; }
  str(s: string): this { this.u8(s.length); this.parts.push(Buffer.from(s, 'latin1')); return this; }
  bytes(b: Buffer): this { this.parts.push(Buffer.from(b)); return this; }
  start(id: number, idstr: string, version: number): this { return this.u8(0x01).u32(id).str(idstr).u32(0).u32(version); }
  footer(id: number): this { return this.u8(0x7e).u32(id); }
  done(): Buffer { return Buffer.concat(this.parts); }
}

function textFill(rng: Rng, b: Buffer): void {
  const words = ['disk', 'sector', 'inode', 'journal', 'the', 'block', 'data', '\n'];
  let o = 0;
  while (o < b.length) for (const c of words[rng.int(words.length)] + ' ') if (o < b.length) b[o++] = c.charCodeAt(0);
}

interface Layout {
  blockFirst: boolean;
  /** Extra bytes spliced in after the first round (to test fallbacks). */
  inject?: Buffer;
}

/** Three pre-copy rounds of a 256-page RAM block and a 4 MiB disk "drive0" (block 3 all zero). */
function blockMigrationStream(l: Layout): Buffer {
  const rng = new Rng(5);
  const ramPages = 256;
  const ram = Array.from({ length: ramPages }, (_, p) => { const b = Buffer.alloc(PAGE); if (p % 3) textFill(rng, b); return b; });
  const disk = Array.from({ length: 4 }, (_, i) => { const b = Buffer.alloc(MIB); if (i !== 3) textFill(rng, b.subarray(0, MIB / 2)); return b; });
  const o = new Out();
  o.u32(0x5145564d).u32(3);
  o.u8(0x07).u32(13).bytes(Buffer.from('pc-q35-7.2\0\0\0'));
  const ramSetup = (): void => {
    o.start(RAM_ID, 'ram', 4).u64(ramPages * PAGE + 0x04).str('pc.ram').u64(ramPages * PAGE).u64(0x10).footer(RAM_ID);
  };
  const blockSetup = (): void => { o.start(BLOCK_ID, 'block', 1).u64(0x02).footer(BLOCK_ID); };
  if (l.blockFirst) { blockSetup(); ramSetup(); } else { ramSetup(); blockSetup(); }
  const blockPart = (type: number, blocks: number[]): void => {
    o.u8(type).u32(BLOCK_ID);
    for (const i of blocks) {
      const zero = disk[i].every((v) => v === 0);
      // (sector << 9) | DEVICE_BLOCK, plus ZERO_BLOCK (no data follows) for the all-zero block.
      o.u64(i * MIB | 0x01 | (zero ? 0x08 : 0)).str('drive0');
      if (!zero) o.bytes(disk[i]);
      o.u64((25 * (i + 1)) << 9 | 0x04);
    }
    o.u64(0x02).footer(BLOCK_ID);
  };
  const ramPart = (type: number, pages: number[]): void => {
    o.u8(type).u32(RAM_ID);
    pages.forEach((p, k) => {
      const zero = ram[p].every((v) => v === 0);
      o.u64(p * PAGE | (zero ? 0x02 : 0x08) | (k ? 0x20 : 0));
      if (!k) o.str('pc.ram');
      if (zero) o.u8(0); else o.bytes(ram[p]);
    });
    o.u64(0x10).footer(RAM_ID);
  };
  blockPart(0x02, [0, 1, 2, 3]);
  ramPart(0x02, Array.from({ length: ramPages }, (_, p) => p));
  if (l.inject) o.bytes(l.inject);
  for (let round = 2; round <= 3; round++) {
    // Small edits to a few disk pages and RAM pages: the re-sent blocks and pages are deltas.
    for (const i of [0, 2]) for (let k = 0; k < 3; k++) disk[i][rng.int(MIB / 2)] ^= 0x20;
    const dirty: number[] = [];
    for (let p = 1; p < ramPages; p += 7) { ram[p][rng.int(PAGE)] ^= 1; dirty.push(p); }
    blockPart(0x02, [0, 2]);
    ramPart(round === 3 ? 0x03 : 0x02, dirty);
  }
  o.u8(0x03).u32(BLOCK_ID).u64(0x02).footer(BLOCK_ID);
  o.u8(0x04).u32(10).str('dev0').u32(0).u32(1).bytes(Buffer.alloc(300, 7)).footer(10);
  o.u8(0x00);
  return o.done();
}

for (const blockFirst of [true, false]) {
  test(`block migration (${blockFirst ? 'block section before RAM, as QEMU 7.2' : 'block section after RAM'}): in sync, deltas for re-sent blocks, byte-exact`, () => {
    const input = blockMigrationStream({ blockFirst });
    for (const seed of [1, 2, 3]) {
      const { output, enc } = roundTrip(pair(32 << 20), input, new Rng(seed));
      assert.ok(output.equals(input), 'byte-exact');
      const s = enc.stats;
      assert.equal(s.syncLost, '', 'parser stayed in sync');
      assert.equal(s.rounds.length, 3);
      // Round 1: 1.5 MiB of text, 2.5 MiB of zero pages (deduplicated). Rounds 2-3: 2 blocks each,
      // all pages but the edited ones are cache hits, the edited ones deltas.
      assert.ok(s.count[T_DELTA] >= 4 + 2 * 36, `deltas ${s.count[T_DELTA]}`);
      assert.ok(s.count[T_DEDUP] >= 2 * 2 * 250, `dedup ${s.count[T_DEDUP]}`);
      assert.ok(s.rawBytes[T_GENERIC_LITERAL] < 1000, 'only device state is generic');
      assert.ok(s.opsOut < input.length * 0.3, `ops ${s.opsOut} of ${input.length}`);
    }
  });
}

test('an unknown section start after RAM, or unknown block flags: generic from there, still byte-exact', () => {
  const unknownSection = new Out().start(7, 'dirty-bitmap', 1).u64(0).done();
  const badFlags = new Out().u8(0x02).u32(BLOCK_ID).u64(0x40).done();
  for (const [inject, why] of [[unknownSection, /unexpected section "dirty-bitmap"/], [badFlags, /unknown block-migration flags 0x40/]] as const) {
    const input = blockMigrationStream({ blockFirst: true, inject });
    const { output, enc } = roundTrip(pair(16 << 20), input, new Rng(7));
    assert.ok(output.equals(input));
    assert.match(enc.stats.syncLost, why);
  }
});

test('a section id that was never declared as "block" is not parsed as one', () => {
  const input = blockMigrationStream({ blockFirst: true, inject: new Out().u8(0x02).u32(9).u64(0x02).footer(9).done() });
  const { output, enc } = roundTrip(pair(16 << 20), input, new Rng(8));
  assert.ok(output.equals(input));
  assert.equal(enc.stats.syncLost, 'non-RAM iterable section');
});
