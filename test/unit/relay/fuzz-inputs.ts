// Generators of adversarial relay inputs, shared by the fuzz tests: QEVM-like streams built from a
// grammar with deliberate mistakes, NBD-like request streams, and mutated slices of real streams.
import { Rng } from '../../../src/relay/tools/index.ts';

function be64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

/** A QEVM-like stream built from a grammar with deliberate mistakes. */
export function craftedQevm(rng: Rng, pool: Buffer[]): Buffer {
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

export function nbdLike(rng: Rng, pool: Buffer[]): Buffer {
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

export function mutate(rng: Rng, src: Buffer): Buffer {
  const start = rng.int(3) === 0 ? 0 : rng.int(src.length);
  const out = Buffer.from(src.subarray(start, start + 1 + rng.int(20000)));
  for (let i = 0, n = rng.int(4); i < n && out.length; i++) out[rng.int(out.length)] = rng.next() & 0xff;
  if (rng.int(5) === 0 && out.length > 10) return Buffer.concat([out, out.subarray(rng.int(out.length))]);
  return out;
}
