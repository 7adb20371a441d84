import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as P from '../../../src/storage/protocol.ts';
import { createDecoder, createEncoder } from '../../../src/storage/codec.ts';

test('RequestParser reassembles requests split at any byte', () => {
  const data = crypto.randomBytes(10_000);
  const stream = Buffer.concat([
    P.encodeRequest({ flags: 0, type: P.CMD_WRITE, handle: 1n, offset: 4096, length: data.length }, data),
    P.encodeRequest({ flags: P.FLAG_FUA, type: P.CMD_WRITE_ZEROES, handle: 2n, offset: 1 << 30, length: 65536 }),
    P.encodeRequest({ flags: 0, type: P.CMD_FLUSH, handle: 3n, offset: 0, length: 0 }),
  ]);
  for (const step of [1, 7, 28, 1000, stream.length]) {
    const p = new P.RequestParser();
    const got: P.Request[] = [];
    for (let i = 0; i < stream.length; i += step) got.push(...p.push(stream.subarray(i, i + step)));
    assert.equal(got.length, 3);
    assert.deepEqual(got[0].data, data);
    assert.equal(got[0].offset, 4096);
    assert.equal(got[1].offset, 1 << 30);
    assert.equal(got[1].flags, P.FLAG_FUA);
    assert.equal(got[2].handle, 3n);
  }
  assert.throws(() => new P.RequestParser().push(Buffer.alloc(28)), P.ProtocolError);
});

test('ReplyParser and hello framing', () => {
  const r = new P.ReplyParser();
  const bytes = Buffer.concat([P.encodeReply({ error: 0, handle: 7n }), P.encodeReply({ error: P.EIO, handle: 8n })]);
  assert.deepEqual(r.push(bytes.subarray(0, 20)), [{ error: 0, handle: 7n }]);
  assert.deepEqual(r.push(bytes.subarray(20)), [{ error: P.EIO, handle: 8n }]);
  const h = P.encodeHello({ volumeBytes: 1, volumeId: 'x', codec: 'relay', token: 't' });
  assert.equal(P.parseHello(h.subarray(0, 5)), undefined);
  assert.deepEqual(P.parseHello(h)?.value, { volumeBytes: 1, volumeId: 'x', codec: 'relay', token: 't' });
});

test('the storage stream round-trips through the relay codec and shrinks re-sent blocks', () => {
  const wire: Buffer[] = [];
  const enc = createEncoder('relay', (b) => wire.push(b));
  const block = Buffer.alloc(65536, 'text-like content of a disk block ');
  const reqs = [
    P.encodeRequest({ flags: 0, type: P.CMD_WRITE, handle: 1n, offset: 0, length: block.length }, block),
    P.encodeRequest({ flags: 0, type: P.CMD_WRITE, handle: 2n, offset: 65536, length: block.length }, block),
  ];
  for (const r of reqs) enc.write(r);
  enc.flush();
  const dec = createDecoder('relay');
  const out = Buffer.concat(wire.flatMap((w) => dec.push(w)));
  assert.deepEqual(out, Buffer.concat(reqs));
  assert.ok(enc.wireBytes < enc.rawBytes / 20, `wire ${enc.wireBytes} raw ${enc.rawBytes}`);
});
