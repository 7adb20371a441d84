import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { Rng } from '../../../src/relay/tools/index.ts';
import { F } from '../../../src/relay/codec/index.ts';

interface Sent { type: number; session: number; payload: Buffer }

function randomFrames(rng: Rng, n: number, large = 200_000): Sent[] {
  const sent: Sent[] = [];
  for (let i = 0; i < n; i++) {
    const payload = Buffer.alloc(rng.int(4) ? rng.int(300) : rng.int(large));
    rng.fill(payload);
    sent.push({ type: F.F_HELLO + rng.int(F.F_END), session: rng.int(1000), payload });
  }
  return sent;
}

function wireOf(sent: Sent[], envelope = true): Buffer {
  const w = new F.FrameWriter({ envelope });
  return Buffer.concat(sent.map((f) => w.frame(f.type, f.session, f.payload)));
}

test('frame reader: any split of the byte stream yields the same frames (joined in new or in reused buffers, from borrowed chunks)', () => {
  const rng = new Rng(21);
  // borrowed: every read arrives in one reused buffer (a socket's onread), overwritten after the read.
  const readBuf = Buffer.alloc(70_012);
  for (let c = 0; c < 900; c++) {
    const sent = randomFrames(rng, 1 + rng.int(12));
    const envelope = rng.int(4) !== 0;
    const reuse = c % 3 === 1;
    const borrowed = c % 3 === 2;
    const wire = wireOf(sent, envelope);
    const reader = new F.FrameReader({ envelope, reuse, borrowed });
    const got: F.Frame[] = [];
    for (let o = 0; o < wire.length;) {
      const n = Math.min(1 + rng.int(rng.int(3) ? 70_000 : 12), wire.length - o);
      const chunk = borrowed ? readBuf.subarray(0, n) : Buffer.from(wire.subarray(o, o + n));
      if (borrowed) wire.copy(readBuf, 0, o, o + n);
      // Reused buffers: a payload is valid until the next read, so it is copied at once here.
      const frames = reader.push(chunk);
      got.push(...(reuse || borrowed ? frames.map((f) => ({ ...f, payload: Buffer.from(f.payload) })) : frames));
      if (borrowed) rng.fill(readBuf);
      o += n;
    }
    assert.equal(reader.buffered, 0);
    assert.equal(reader.end(), undefined);
    assert.equal(got.length, sent.length);
    got.forEach((f, i) => assert.deepEqual([f.type, f.session, f.payload.equals(sent[i].payload)], [sent[i].type, sent[i].session, true]));
  }
});

test('frame header and payload written apart (header()) are the same bytes as frame()', () => {
  const rng = new Rng(5);
  const sent = randomFrames(rng, 20);
  const w = new F.FrameWriter();
  const apart = Buffer.concat(sent.flatMap((f) => [w.header(f.type, f.session, f.payload), f.payload]));
  assert.ok(apart.equals(wireOf(sent)));
});

test('the first frame keeps the version 1/2 header: an old relay reads a new HELLO, a new relay an old one', () => {
  const hello = Buffer.from(JSON.stringify({ magic: 'cloudnet-relay', version: 2, cacheBytes: 1 << 20, role: 'sender' }));
  // Version 2's framing: [type][be32 session][be32 len][payload], no CRC.
  const v2 = Buffer.alloc(9 + hello.length);
  v2[0] = F.F_HELLO;
  v2.writeUInt32BE(hello.length, 5);
  hello.copy(v2, 9);
  const [f] = new F.FrameReader().push(v2);
  assert.equal(F.parseJson<F.Hello>(f.payload).version, 2);
  assert.ok(new F.FrameWriter().frame(F.F_HELLO, 0, hello).equals(v2));
});

test('every frame after the first carries a CRC-32 chained over the stream', () => {
  const w = new F.FrameWriter();
  const a = w.frame(F.F_HELLO, 0, Buffer.from('{}'));
  const b = w.frame(F.F_DATA, 3, Buffer.from('payload'));
  assert.equal(b.length, F.FRAME_HEADER + 7);
  const expected = zlib.crc32(Buffer.from('payload'), zlib.crc32(b.subarray(0, 9), zlib.crc32(a)));
  assert.equal(b.readUInt32BE(9), expected);
});

test('a flipped bit anywhere after the first frame, a dropped, repeated or swapped frame: the reader fails, naming the frame', () => {
  const rng = new Rng(99);
  let flips = 0;
  for (let c = 0; c < 400; c++) {
    const sent = randomFrames(rng, 3 + rng.int(6), 2000);
    const wire = wireOf(sent);
    const first = F.ENVELOPE_HEADER + sent[0].payload.length;
    const bad = Buffer.from(wire);
    const bit = first * 8 + rng.int((wire.length - first) * 8);
    bad[bit >> 3] ^= 1 << (bit & 7);
    const reader0 = new F.FrameReader();
    const stopped = reader0.read(bad).error ?? reader0.end(); // a flipped length can make it wait for bytes that never come
    assert.ok(stopped instanceof F.FrameError, `case ${c}: a flipped bit went unnoticed`);
    assert.match(stopped.message, /^(corrupt frame \d+ at byte \d+ \((crc mismatch|bad frame type|frame too large)|truncated: frame \d+)/);
    flips++;
    // Structural damage: drop, repeat or swap one frame (not the first).
    const frames = sent.map((f, i) => wireOf(sent.slice(0, i + 1)).subarray(wireOf(sent.slice(0, i)).length));
    const k = 1 + rng.int(frames.length - 1);
    // [frames, the 1-based number of the first frame that must fail]
    const variants: [Buffer[], number][] = [[[...frames.slice(0, k + 1), frames[k], ...frames.slice(k + 1)], k + 2]];
    // Dropping the last frame is truncation at a frame boundary: offline files catch it by their END.
    if (k + 1 < frames.length) {
      variants.push([frames.filter((_, i) => i !== k), k + 1]);
      variants.push([[...frames.slice(0, k), frames[k + 1], frames[k], ...frames.slice(k + 2)], k + 1]);
    }
    for (const [v, failsAt] of variants) {
      const err = new F.FrameReader().read(Buffer.concat(v)).error;
      assert.ok(err instanceof F.FrameError && err.reason === 'corrupt', `case ${c}: structural change of frame ${k + 1} unnoticed`);
      assert.equal(err.frame, failsAt);
    }
  }
  assert.equal(flips, 400);
});

test('frame reader: an impossible header fails at once, even before the frame could be complete', () => {
  const r = new F.FrameReader();
  const h = Buffer.alloc(9);
  h[0] = F.F_DATA;
  h.writeUInt32BE(F.MAX_FRAME + 1, 5);
  assert.deepEqual(r.push(h.subarray(0, 4)), []);
  assert.throws(() => r.push(h.subarray(4)), F.FrameError);
  const r2 = new F.FrameReader();
  const w = new F.FrameWriter();
  assert.deepEqual(r2.push(w.frame(F.F_HELLO, 0, Buffer.from('{}'))).length, 1);
  assert.deepEqual(r2.push(w.header(F.F_DATA, 1, Buffer.alloc(100))), []);
  assert.throws(() => { r2.push(Buffer.alloc(100)); r2.push(Buffer.from([0xee, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])); }, F.FrameError);
});

test('a stream that stops inside a frame is reported as truncated', () => {
  const w = new F.FrameWriter();
  const wire = Buffer.concat([w.frame(F.F_HELLO, 0, Buffer.from('{}')), w.frame(F.F_DATA, 1, Buffer.alloc(50))]);
  for (const cut of [wire.length - 1, 11 + 5, 11 + 13]) {
    const r = new F.FrameReader();
    assert.equal(r.read(wire.subarray(0, cut)).error, undefined);
    const err = r.end();
    assert.ok(err instanceof F.FrameError && err.reason === 'truncated' && err.frame === 2, String(err));
  }
});
