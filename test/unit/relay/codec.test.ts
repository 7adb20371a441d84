import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packBatch, SessionDecoder, SessionEncoder, T_DEDUP, T_DELTA, T_LITERAL, T_ZERO, unpackBatch } from '../../../src/relay/codec/index.ts';
import { decodeStreams, encodeStreams, Rng, syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { pair, roundTrip } from './helpers.ts';

test('QEVM parser recognises a whole synthetic pre-copy stream and finds its rounds', () => {
  const input = syntheticQemuStream({ seed: 3, pages: 600, rounds: 4 });
  const { output, enc } = roundTrip(pair(8 << 20), input, new Rng(1));
  assert.ok(output.equals(input));
  const s = enc.stats;
  assert.equal(s.mode, 'qevm');
  assert.equal(s.syncLost, '', 'parser stayed in sync');
  assert.equal(s.rounds.length, 4);
  assert.ok(s.count[T_ZERO] > 100 && s.count[T_LITERAL] > 100 && s.count[T_DELTA] > 50 && s.count[T_DEDUP] > 10);
  assert.equal(s.rounds[0].pages + s.rounds[0].zeroPages, 616);
});

test('a second identical VM over the same cache costs a few percent of its stream', () => {
  const a = syntheticQemuStream({ seed: 1, pages: 1000, rounds: 3 });
  const b = syntheticQemuStream({ seed: 9, pages: 1000, rounds: 3, contentSeed: 1 });
  const r = encodeStreams([a, b], { cacheBytes: 32 << 20 });
  assert.ok(r.stats[1].wireOut < b.length * 0.05, `second VM ${r.stats[1].wireOut} of ${b.length}`);
  const d = decodeStreams(Buffer.concat(r.out));
  assert.ok(Buffer.concat(d.outputs[0]).equals(a));
  assert.ok(Buffer.concat(d.outputs[1]).equals(b));
});

test('garbage after the RAM section: falls back to generic, still byte-exact', () => {
  const base = syntheticQemuStream({ seed: 4, pages: 200, rounds: 2 });
  const cut = 5000 + 4096 * 50;
  const junk = Buffer.alloc(30000);
  new Rng(2).fill(junk);
  const input = Buffer.concat([base.subarray(0, cut), junk, base.subarray(cut)]);
  const { output, enc } = roundTrip(pair(4 << 20), input, new Rng(3));
  assert.ok(output.equals(input));
  assert.notEqual(enc.stats.syncLost, '');
});

test('not QEMU at all: generic mode dedups repeated content', () => {
  const block = Buffer.alloc(64 * 1024);
  new Rng(8).fill(block);
  const input = Buffer.concat([block, Buffer.from('some header'), block, block]);
  const { output, enc } = roundTrip(pair(4 << 20), input, new Rng(4), 'generic');
  assert.ok(output.equals(input));
  assert.ok(enc.stats.opsOut < input.length * 0.45, `ops ${enc.stats.opsOut}`);
});

test('NBD writes are deduplicated against earlier writes of the same blocks', () => {
  const parts: Buffer[] = [Buffer.from('NBDMAGIC-negotiation-bytes-from-client')];
  const data = Buffer.alloc(16 * 4096);
  new Rng(9).fill(data);
  for (let i = 0; i < 3; i++) {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0); h.writeUInt16BE(0, 4); h.writeUInt16BE(1, 6);
    h.writeBigUInt64BE(BigInt(i), 8); h.writeBigUInt64BE(BigInt((i * 16 + 4) * 4096), 16); h.writeUInt32BE(data.length, 24);
    parts.push(h, data);
    if (i === 1) data[100] ^= 0xff;
  }
  const input = Buffer.concat(parts);
  const { output, enc } = roundTrip(pair(4 << 20), input, new Rng(5), 'nbd');
  assert.ok(output.equals(input));
  assert.equal(enc.stats.mode, 'nbd');
  assert.ok(enc.stats.count[T_DEDUP] >= 31, `dedup ${enc.stats.count[T_DEDUP]}`);
});

test('reads of any size in one reused buffer, overwritten after each write (the live sender reads so): exact, in sync, same ops as fixed small reads', () => {
  const input = syntheticQemuStream({ seed: 6, pages: 3000, rounds: 3 });
  const run = (sizes: (rng: Rng) => number): { output: Buffer; ops: Buffer; syncLost: string } => {
    const p = pair(32 << 20);
    const dec = new SessionDecoder(p.rx);
    const out: Buffer[] = [];
    const ops: Buffer[] = [];
    const enc = new SessionEncoder(p.tx, (b) => {
      ops.push(Buffer.from(b.ops));
      const { ops: o, rawLen, inserts } = unpackBatch(packBatch(b.ops, b.rawLen, 0, undefined, b.inserts));
      out.push(dec.decode(o, rawLen, undefined, inserts));
    }, { mode: 'auto' });
    const rng = new Rng(8);
    // Every read is written into one reused buffer, overwritten after the call (a socket's onread).
    const readBuf = Buffer.alloc(400_000);
    for (let off = 0; off < input.length;) {
      const n = Math.min(sizes(rng), input.length - off);
      input.copy(readBuf, 0, off, off + n);
      enc.write(readBuf.subarray(0, n));
      readBuf.fill(0xa5);
      off += n;
    }
    enc.end();
    return { output: Buffer.concat(out), ops: Buffer.concat(ops), syncLost: enc.stats.syncLost };
  };
  // Reads from a few bytes to 400 KB: records cut anywhere.
  const big = run((rng) => (rng.int(3) === 0 ? 1 + rng.int(40) : 1 + rng.int(400_000)));
  const small = run(() => 4096);
  assert.ok(big.output.equals(input));
  assert.equal(big.syncLost, '');
  assert.ok(big.ops.equals(small.ops), 'the ops do not depend on how the input was read');
});
