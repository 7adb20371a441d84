import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/relay/tools/index.ts';
import { F } from '../../../src/relay/codec/index.ts';

test('frame reader: any split of the byte stream yields the same frames', () => {
  const rng = new Rng(21);
  for (let c = 0; c < 300; c++) {
    const sent: { type: number; session: number; payload: Buffer }[] = [];
    for (let i = 0, n = 1 + rng.int(12); i < n; i++) {
      const payload = Buffer.alloc(rng.int(4) ? rng.int(300) : rng.int(200_000));
      rng.fill(payload);
      sent.push({ type: F.F_HELLO + rng.int(F.F_SEEDED), session: rng.int(1000), payload });
    }
    const wire = Buffer.concat(sent.map((f) => F.encodeFrame(f.type, f.session, f.payload)));
    const reader = new F.FrameReader();
    const got: F.Frame[] = [];
    for (let o = 0; o < wire.length;) {
      const n = 1 + rng.int(rng.int(3) ? 70_000 : 12);
      got.push(...reader.push(wire.subarray(o, o + n)));
      o += n;
    }
    assert.equal(reader.buffered, 0);
    assert.equal(got.length, sent.length);
    got.forEach((f, i) => assert.deepEqual([f.type, f.session, f.payload.equals(sent[i].payload)], [sent[i].type, sent[i].session, true]));
  }
});

test('frame reader: an impossible header fails at once, even before the frame could be complete', () => {
  const r = new F.FrameReader();
  const h = F.frameHeader(F.F_DATA, 1, F.MAX_FRAME + 1);
  assert.deepEqual(r.push(h.subarray(0, 4)), []);
  assert.throws(() => r.push(h.subarray(4)), F.FrameError);
  const r2 = new F.FrameReader();
  assert.deepEqual(r2.push(F.frameHeader(F.F_DATA, 1, 100)), []);
  assert.throws(() => { r2.push(Buffer.alloc(100)); r2.push(Buffer.from([0xee, 0, 0, 0, 0, 0, 0, 0, 0, 1])); }, F.FrameError);
});
