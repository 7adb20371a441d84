// An NBD client's option negotiation (fixed newstyle: flags, IHAVEOPT options, each answered by the
// server before the next) makes the relay's encoder flush partial input while it waits. Between
// NBD requests that must not cost the NBD parse: the transmission that follows is still parsed
// into keyed pages (deduplicated, seedable), and the stream stays byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createDecoder, createEncoder } from '../../../src/storage/codec.ts';

function option(code: number, data: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.write('IHAVEOPT', 0, 'latin1');
  h.writeUInt32BE(code, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

function write(handle: number, offset: number, data: Buffer): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(0x25609513, 0);
  h.writeUInt16BE(1, 6);
  h.writeBigUInt64BE(BigInt(handle), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(data.length, 24);
  return Buffer.concat([h, data]);
}

test('a flush during NBD option negotiation keeps the NBD parse; the stream round-trips', () => {
  const wire: Buffer[] = [];
  const enc = createEncoder('relay', (b) => wire.push(b), { mode: 'nbd' });
  const input: Buffer[] = [];
  const send = (b: Buffer, flush: boolean) => { input.push(b); enc.write(b); if (flush) enc.flush(true); };
  // Client flags, then NBD_OPT_STRUCTURED_REPLY and NBD_OPT_GO, each followed by a wait for the reply.
  send(Buffer.from([0, 0, 0, 1]), true);
  send(option(8, Buffer.alloc(0)), true);
  send(option(7, Buffer.concat([Buffer.from([0, 0, 0, 4]), Buffer.from('disk'), Buffer.from([0, 0])])), true);
  const page = crypto.randomBytes(4096);
  for (let i = 0; i < 64; i++) send(write(i + 1, i * 4096, page), i === 63); // one content, 64 times
  const stats = enc.stats!;
  assert.equal(stats.syncLost, '', `sync lost: ${stats.syncLost}`);
  assert.equal(stats.mode, 'nbd');
  assert.ok(wire.reduce((n, b) => n + b.length, 0) < 2 * 4096 + 4096, 'the repeated page went as references');
  const dec = createDecoder('relay');
  const out = Buffer.concat(wire.flatMap((b) => dec.push(b)));
  assert.ok(out.equals(Buffer.concat(input)), 'not byte-exact');
});
