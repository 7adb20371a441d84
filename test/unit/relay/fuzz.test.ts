// Property/fuzz test: decode(encode(x)) == x for random, adversarial (QEVM-like with garbage,
// truncation, repeated and edited pages, NBD-like) and mutated synthetic streams, encoded as
// consecutive sessions over one long-lived cache pair (small, so eviction is exercised), with
// random write sizes, idle flushes and stall flushes. RELAY_FUZZ_CASES sets the case count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DecodeError, packBatch, SessionDecoder, SessionEncoder, unpackBatch, type StreamMode } from '../../../src/relay/codec/index.ts';
import { Rng, syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { pair, roundTrip } from './helpers.ts';

const CASES = Number(process.env.RELAY_FUZZ_CASES ?? 100_000);

function be64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

/** A QEVM-like stream built from a grammar with deliberate mistakes. */
function craftedQevm(rng: Rng, pool: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from('QEVM\0\0\0\x03', 'latin1')];
  if (rng.int(2)) parts.push(Buffer.from('\x07\0\0\0\x05pc-q3', 'latin1'));
  parts.push(Buffer.from('\x01\0\0\0\x02\x03ram\0\0\0\0\0\0\0\x04', 'latin1'));
  const blocks = ['pc.ram', 'b2'];
  const sizes = [(1 + rng.int(64)) * 4096, (1 + rng.int(8)) * 4096];
  parts.push(be64(sizes[0] + sizes[1] + 4));
  blocks.forEach((b, i) => { parts.push(Buffer.from([b.length]), Buffer.from(b), be64(sizes[i])); });
  parts.push(be64(0x10), Buffer.from('\x7e\0\0\0\x02', 'latin1'));
  const records = rng.int(12);
  let last = -1;
  for (let i = 0; i < records; i++) {
    const r = rng.int(20);
    if (r === 0) { parts.push(Buffer.from('\x02\0\0\0\x02', 'latin1')); continue; }
    if (r === 1) { parts.push(be64(0x10), Buffer.from('\x7e\0\0\0\x02', 'latin1')); continue; }
    if (r === 2) { const g = Buffer.alloc(rng.int(40)); rng.fill(g); parts.push(g); continue; }
    const bi = rng.int(4) === 0 ? 1 : 0;
    const addr = rng.int(sizes[bi] / 4096 + (rng.int(10) === 0 ? 5 : 0)) * 4096;
    const cont = bi === last && rng.int(4) !== 0 ? 0x20 : 0;
    const kind = r < 6 ? 0x02 : r === 6 ? 0x40 : r === 7 ? 0x100 : 0x08;
    parts.push(be64(addr | kind | cont));
    if (!cont) parts.push(Buffer.from([blocks[bi].length]), Buffer.from(blocks[bi]));
    last = bi;
    if (kind === 0x02) parts.push(Buffer.from([rng.int(8) === 0 ? 1 : 0]));
    else if (kind === 0x40) { const n = rng.int(100); parts.push(Buffer.from([1, n >> 8, n & 0xff]), Buffer.alloc(n, 7)); }
    else if (kind === 0x100) { const n = rng.int(100); parts.push(be64(n).subarray(4), Buffer.alloc(n, 9)); }
    else {
      const p = Buffer.from(pool[rng.int(pool.length)]);
      if (rng.int(2)) p[rng.int(4096)] ^= 1 + rng.int(255);
      parts.push(p);
    }
  }
  if (rng.int(3) === 0) parts.push(Buffer.from('\x04\0\0\0\x09\x04dev0\0\0\0\0\0\0\0\x01device-state\0', 'latin1'));
  let out = Buffer.concat(parts);
  if (rng.int(4) === 0) out = out.subarray(0, rng.int(out.length + 1)); // truncated
  return out;
}

function nbdLike(rng: Rng, pool: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, n = rng.int(5); i < n; i++) {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(rng.int(8) ? 0x25609513 : 0x21e41c71, 0);
    h.writeUInt16BE(rng.int(5) ? 1 : rng.int(20), 6);
    const pages = rng.int(3);
    const len = pages * 4096 + (rng.int(4) === 0 ? rng.int(300) : 0);
    h.writeBigUInt64BE(BigInt(rng.int(100) * 4096 + (rng.int(6) === 0 ? 7 : 0)), 16);
    h.writeUInt32BE(len, 24);
    parts.push(h);
    for (let p = 0; p < pages; p++) parts.push(pool[rng.int(pool.length)]);
    parts.push(Buffer.alloc(len - pages * 4096, 3));
  }
  const out = Buffer.concat(parts);
  return rng.int(4) === 0 ? out.subarray(0, rng.int(out.length + 1)) : out;
}

function mutate(rng: Rng, src: Buffer): Buffer {
  const start = rng.int(3) === 0 ? 0 : rng.int(src.length);
  const out = Buffer.from(src.subarray(start, start + 1 + rng.int(20000)));
  for (let i = 0, n = rng.int(4); i < n && out.length; i++) out[rng.int(out.length)] = rng.next() & 0xff;
  if (rng.int(5) === 0 && out.length > 10) return Buffer.concat([out, out.subarray(rng.int(out.length))]);
  return out;
}

function recordedStreams(): Buffer[] {
  const dir = path.join(process.env.CLOUDNET_CACHE ?? path.resolve('.cache'), 'streams');
  if (!fs.existsSync(dir)) return [];
  // The first 4 MiB of each (header, RAM setup, first-round pages) is plenty for mutations.
  return fs.readdirSync(dir).filter((f) => f.endsWith('.qemu')).slice(0, 4).map((f) => {
    const fd = fs.openSync(path.join(dir, f), 'r');
    try {
      const b = Buffer.alloc(4 << 20);
      return b.subarray(0, fs.readSync(fd, b, 0, b.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  });
}

test(`decode(encode(x)) == x on ${CASES} random, adversarial and mutated streams`, () => {
  const rng = new Rng(Number(process.env.RELAY_FUZZ_SEED ?? 12345));
  const pool: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const p = Buffer.alloc(4096, i % 3 === 0 ? 0 : 0x41 + i);
    if (i % 4 === 1) rng.fill(p);
    pool.push(p);
  }
  const synthetic = [1, 2, 3].map((seed) => syntheticQemuStream({ seed, pages: 48, rounds: 3, dirtyFraction: 0.3 }));
  const recorded = recordedStreams();
  if (!recorded.length) console.log('# fuzz: no recorded streams in .cache/streams (npm run record:streams); synthetic only');
  let p = pair(48 * 4096);
  const counts = [0, 0, 0, 0, 0];
  for (let c = 0; c < CASES; c++) {
    if (c % 5000 === 4999) p = pair((16 + rng.int(64)) * 4096); // fresh pairs of varying size
    const kind = rng.int(recorded.length ? 5 : 4);
    let input: Buffer;
    let mode: StreamMode = 'auto';
    if (kind === 0) { input = Buffer.alloc(rng.int(3000)); rng.fill(input); mode = (['auto', 'generic', 'nbd', 'qevm'] as const)[rng.int(4)]; }
    else if (kind === 1) input = craftedQevm(rng, pool);
    else if (kind === 2) { input = nbdLike(rng, pool); mode = rng.int(2) ? 'nbd' : 'auto'; }
    else if (kind === 3) input = mutate(rng, synthetic[rng.int(synthetic.length)]);
    else input = mutate(rng, recorded[rng.int(recorded.length)]);
    counts[kind]++;
    const { output } = roundTrip(p, input, rng, mode, rng.int(3) === 0 ? 0 : 1, true);
    if (!output.equals(input)) {
      assert.fail(`case ${c} (kind ${kind}, ${input.length} bytes) differs; input hex head ${input.subarray(0, 64).toString('hex')}`);
    }
  }
  console.log(`# fuzz cases by kind (random, crafted QEVM, NBD-like, mutated synthetic, mutated recorded): ${counts.join(', ')}`);
});

test('concurrent sessions over one cache pair: random interleaving keeps the caches in lockstep', () => {
  const rng = new Rng(777);
  const pool: Buffer[] = [];
  for (let i = 0; i < 12; i++) { const p = Buffer.alloc(4096); rng.fill(p, 0, 64 + rng.int(4000)); pool.push(p); }
  const cases = Math.max(200, Math.floor(CASES / 100));
  for (let c = 0; c < cases; c++) {
    const p = pair((8 + rng.int(40)) * 4096); // small: eviction under concurrency
    const n = 2 + rng.int(3);
    const inputs = Array.from({ length: n }, (_, i) => (i % 2 ? craftedQevm(rng, pool) : mutate(rng, syntheticQemuStream({ seed: 1 + rng.int(3), pages: 24, rounds: 2 }))));
    const outs: Buffer[][] = inputs.map(() => []);
    const decs = inputs.map(() => new SessionDecoder(p.rx));
    // Frames reach the receiver in the order the encoders emit them, whatever the session.
    const encs = inputs.map((_, i) => new SessionEncoder(p.tx, (b) => {
      const u = unpackBatch(packBatch(b.ops, b.rawLen, 1, undefined, b.inserts));
      outs[i].push(decs[i].decode(u.ops, u.rawLen, undefined, u.inserts));
    }, { batchOpBytes: 512 + rng.int(16384) }));
    interleave(rng, inputs, encs);
    inputs.forEach((inp, i) => assert.ok(Buffer.concat(outs[i]).equals(inp), `case ${c} session ${i}`));
  }
});

/** Feeds the sessions' inputs to their encoders in random-sized pieces, interleaved at random
 *  across sessions, with random (sometimes final) flushes, then ends every encoder. */
function interleave(rng: Rng, inputs: Buffer[], encs: SessionEncoder[]): void {
  const offs = inputs.map(() => 0);
  while (offs.some((o, i) => o < inputs[i].length)) {
    const i = rng.int(inputs.length);
    if (offs[i] >= inputs[i].length) continue;
    const len = 1 + rng.int(6000);
    encs[i].write(inputs[i].subarray(offs[i], offs[i] + len));
    offs[i] += len;
    if (rng.int(10) === 0) encs[i].flush(rng.int(4) === 0);
  }
  encs.forEach((e) => e.end());
}

test('dropped batches (a session the receiver cannot decode) never yield wrong bytes in the other sessions', () => {
  const rng = new Rng(4242);
  const pool: Buffer[] = [];
  for (let i = 0; i < 12; i++) { const p = Buffer.alloc(4096); rng.fill(p, 0, 64 + rng.int(4000)); pool.push(p); }
  const cases = Math.max(200, Math.floor(CASES / 200));
  let exact = 0;
  let failed = 0;
  for (let c = 0; c < cases; c++) {
    const p = pair((8 + rng.int(40)) * 4096);
    const n = 2 + rng.int(3);
    const inputs = Array.from({ length: n }, (_, i) => (i % 2 ? craftedQevm(rng, pool) : mutate(rng, syntheticQemuStream({ seed: 1 + rng.int(3), pages: 24, rounds: 2 }))));
    const outs: Buffer[][] = inputs.map(() => []);
    const broken = inputs.map(() => false);
    const decs = inputs.map(() => new SessionDecoder(p.rx));
    const victim = rng.int(n); // its batches are dropped from a random point on, as after a corrupt frame
    const dropFrom = rng.int(4);
    let victimBatches = 0;
    const encs = inputs.map((_, i) => new SessionEncoder(p.tx, (b) => {
      const u = unpackBatch(packBatch(b.ops, b.rawLen, 1, undefined, b.inserts));
      if (i === victim && victimBatches++ >= dropFrom) broken[i] = true;
      if (broken[i]) { p.rx.cache.skip(u.inserts); return; }
      try {
        outs[i].push(decs[i].decode(u.ops, u.rawLen, undefined, u.inserts));
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        broken[i] = true;
      }
    }, { batchOpBytes: 512 + rng.int(16384) }));
    interleave(rng, inputs, encs);
    inputs.forEach((inp, i) => {
      const got = Buffer.concat(outs[i]);
      if (broken[i]) {
        assert.ok(inp.subarray(0, got.length).equals(got), `case ${c} session ${i}: a failed session's output is a prefix`);
        if (i !== victim) failed++;
      } else {
        assert.ok(got.equals(inp), `case ${c} session ${i}`);
        if (i !== victim) exact++;
      }
    });
  }
  console.log(`# other sessions: ${exact} byte-exact, ${failed} failed cleanly (they referenced dropped content)`);
  assert.ok(exact > failed, 'skipping keeps most other sessions decodable');
});
