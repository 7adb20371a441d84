// Integrity of the live relay link (protocol version 3), on loopback with a plain link (TLS would
// add nothing here: these are the relay's own checks). A session ends cleanly only on a FIN whose
// totals match what was decoded; a link that ends without FIN, a damaged frame, or a lost or
// repeated batch aborts the session with a named reason, and the destination sees a reset, never
// a clean but short or wrong stream. A relay of the previous version is refused at HELLO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ReceiverRelay, relayRegistry, SenderRelay } from '../../src/relay/transport/index.ts';
// Not in the entries: this test speaks the link's handshake itself.
import { awaitHello, HandshakeError, Link } from '../../src/relay/transport/link.ts';
import { createContext, F, packBatch, SessionEncoder } from '../../src/relay/codec/index.ts';
import type { StreamMode } from '../../src/relay/codec/index.ts';
import { Rng, syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { sendStream, sha256, startSink } from './relay-helpers.ts';
import type { Sink } from './relay-helpers.ts';

const CACHE = 4 << 20;
const PLAIN = { kind: 'plain-inside-wireguard' } as const;

interface Bed { receiver: ReceiverRelay; port: number; sinks: Sink[] }

async function withBed(sinks: number, connections: number, body: (b: Bed) => Promise<void>): Promise<void> {
  const s = await Promise.all(Array.from({ length: sinks }, () => startSink(connections)));
  const targets: Record<string, { host: string; port: number }> = {};
  s.forEach((k, i) => { targets[`t${i}`] = { host: '127.0.0.1', port: k.port }; });
  const receiver = new ReceiverRelay({ listen: { host: '127.0.0.1', port: 0 }, targets, security: PLAIN, cacheBytes: CACHE });
  const { port } = await receiver.start();
  try {
    await body({ receiver, port, sinks: s });
  } finally {
    await receiver.stop();
    await Promise.all(s.map((k) => k.close()));
  }
}

/** A hand-driven sender relay: plain link, our HELLO, the receiver's answer awaited. */
async function sender(b: Bed, version = F.PROTOCOL_VERSION): Promise<Link> {
  const socket = net.connect(b.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const link = new Link(socket);
  link.sendJson(F.F_HELLO, 0, { magic: 'cloudnet-relay', version, cacheBytes: CACHE, role: 'sender' });
  if (version === F.PROTOCOL_VERSION) await awaitHello(link);
  return link;
}

/** Packed batches of `input`, encoded against `ctx` (the sender's half of the lockstep cache). */
function batchesOf(ctx: ReturnType<typeof createContext>, input: Buffer, mode: StreamMode = 'auto'): { payload: Buffer; rawLen: number }[] {
  const out: { payload: Buffer; rawLen: number }[] = [];
  const enc = new SessionEncoder(ctx, (bt) => out.push({ payload: packBatch(bt.ops, bt.rawLen, 1, undefined, bt.inserts), rawLen: bt.rawLen }), { mode, batchOpBytes: 8 << 10 });
  for (let o = 0; o < input.length; o += 20_000) enc.write(input.subarray(o, o + 20_000));
  enc.end();
  return out;
}

function closeReason(b: Bed, session: number): string | undefined {
  const st = b.receiver.stats() as { finished: { id: number; closeReason?: string }[] };
  return st.finished.filter((s) => s.id === session).at(-1)?.closeReason;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = relayRegistry.getSingleMetric(name);
  const v = m ? (await m.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val)) : undefined;
  return v?.value ?? 0;
}

const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a link that ends cleanly between frames, before the FIN: the session fails, the destination sees a reset', async () => {
  await withBed(1, 1, async (b) => {
    const link = await sender(b);
    const input = syntheticQemuStream({ seed: 3, pages: 200, rounds: 2 });
    const batches = batchesOf(createContext(CACHE), input);
    link.sendJson(F.F_OPEN, 1, { mode: 'auto', target: 't0' });
    for (const bt of batches.slice(0, 3)) link.send(F.F_DATA, 1, bt.payload);
    await settle();
    link.socket.end(); // a clean TCP end, at a frame boundary: only the missing FIN tells
    const r = await b.sinks[0].results[0];
    assert.equal(r.ended, 'reset');
    assert.equal(r.bytes, batches.slice(0, 3).reduce((a, bt) => a + bt.rawLen, 0));
    assert.equal(r.hash, sha256(input.subarray(0, r.bytes)));
    await settle();
    assert.equal(closeReason(b, 1), 'peer-lost');
  });
});

test('a lost or a repeated batch: the FIN totals disagree, the session fails (truncated / corrupt) with a reset', async () => {
  await withBed(2, 1, async (b) => {
    const link = await sender(b);
    // Random bytes in generic mode: no cache references, so only the FIN can notice.
    const input = Buffer.alloc(120_000);
    const other = Buffer.alloc(120_000);
    new Rng(5).fill(input);
    new Rng(6).fill(other);
    const ctx = createContext(CACHE);
    const lost = batchesOf(ctx, input, 'generic');
    const repeated = batchesOf(ctx, other, 'generic');
    assert.ok(lost.length >= 3);
    link.sendJson(F.F_OPEN, 1, { mode: 'generic', target: 't0' });
    link.sendJson(F.F_OPEN, 2, { mode: 'generic', target: 't1' });
    lost.forEach((bt, i) => { if (i !== 1) link.send(F.F_DATA, 1, bt.payload); });
    repeated.forEach((bt, i) => { link.send(F.F_DATA, 2, bt.payload); if (i === 1) link.send(F.F_DATA, 2, bt.payload); });
    link.send(F.F_FIN, 1, F.totalsPayload({ batches: lost.length, bytes: input.length }));
    link.send(F.F_FIN, 2, F.totalsPayload({ batches: repeated.length, bytes: other.length }));
    const [r1, r2] = await Promise.all([b.sinks[0].results[0], b.sinks[1].results[0]]);
    assert.equal(r1.ended, 'reset');
    assert.equal(r2.ended, 'reset');
    await settle();
    assert.equal(closeReason(b, 1), 'truncated');
    assert.equal(closeReason(b, 2), 'corrupt');
    link.close('test done');
  });
});

test('one flipped bit on the link: the link closes, its open sessions fail "corrupt", nothing of the damaged frame is written', async () => {
  await withBed(2, 1, async (b) => {
    const link = await sender(b);
    const input = syntheticQemuStream({ seed: 4, pages: 200, rounds: 2 });
    const batches = batchesOf(createContext(CACHE), input);
    link.sendJson(F.F_OPEN, 1, { mode: 'auto', target: 't0' });
    link.sendJson(F.F_OPEN, 2, { mode: 'auto', target: 't1' });
    link.send(F.F_DATA, 1, batches[0].payload);
    const damaged = link.writer.frame(F.F_DATA, 1, batches[1].payload);
    damaged[F.FRAME_HEADER + (damaged.length - F.FRAME_HEADER >> 1)] ^= 0x10;
    link.socket.write(damaged);
    const [r1, r2] = await Promise.all([b.sinks[0].results[0], b.sinks[1].results[0]]);
    assert.deepEqual([r1.ended, r1.bytes, r1.hash], ['reset', batches[0].rawLen, sha256(input.subarray(0, batches[0].rawLen))]);
    assert.deepEqual([r2.ended, r2.bytes], ['reset', 0]);
    await settle();
    assert.equal(closeReason(b, 1), 'corrupt');
    assert.equal(closeReason(b, 2), 'corrupt');
  });
});

test('a relay of protocol version 2 is refused at HELLO with a clear reason, whichever side is old', async () => {
  await withBed(1, 1, async (b) => {
    // An old sender: its HELLO is the same envelope; the receiver answers with a CLOSE it can read.
    const old = await sender(b, 2);
    await assert.rejects(awaitHello(old), (err: unknown) => err instanceof HandshakeError && err.reason === 'version' && new RegExp(`peer 2, local ${F.PROTOCOL_VERSION}`).test(err.message));
    old.close('test');
  });
  // An old receiver: answers HELLO version 2 and, right behind it, a frame in version 2's framing.
  const oldReceiver = net.createServer((s) => {
    s.once('data', () => {
      const hello = Buffer.from(JSON.stringify({ magic: 'cloudnet-relay', version: 2, cacheBytes: CACHE, role: 'receiver' }));
      const v2 = (type: number, payload: Buffer): Buffer => { const h = Buffer.alloc(9); h[0] = type; h.writeUInt32BE(payload.length, 5); return Buffer.concat([h, payload]); };
      s.write(Buffer.concat([v2(F.F_HELLO, hello), v2(F.F_SEEDED, Buffer.alloc(32, 7))]));
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => oldReceiver.listen(0, '127.0.0.1', r));
  const relay = new SenderRelay({
    listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't0', mode: 'auto' }], peer: { host: '127.0.0.1', port: (oldReceiver.address() as net.AddressInfo).port },
    security: PLAIN, cacheBytes: CACHE,
  });
  try {
    const before = await metric('cloudnet_relay_sessions_closed_total', { role: 'sender', reason: 'version' });
    await assert.rejects(relay.connect(), (err: unknown) => err instanceof HandshakeError && err.reason === 'version' && new RegExp(`peer 2, local ${F.PROTOCOL_VERSION}`).test(err.message));
    const [addr] = await relay.start();
    const r = await sendStream(addr.port, Buffer.alloc(10_000, 1));
    assert.equal(r.reply, '');
    assert.equal(await metric('cloudnet_relay_sessions_closed_total', { role: 'sender', reason: 'version' }), before + 1);
  } finally {
    await relay.stop();
    oldReceiver.close();
  }
});

test('random damage to a live link stream (flipped bits, lost, repeated frames, cuts at frame boundaries): every session is byte-exact with a clean end, or reset', async () => {
  const CASES = Number(process.env.RELAY_LIVE_FUZZ_CASES ?? 40);
  const rng = new Rng(31);
  const inputs = [syntheticQemuStream({ seed: 6, pages: 120, rounds: 2 }), syntheticQemuStream({ seed: 7, pages: 120, rounds: 2, contentSeed: 6 })];
  const kinds = { flip: 0, drop: 0, repeat: 0, cut: 0 };
  let exact = 0;
  let reset = 0;
  await withBed(2, CASES, async (b) => {
    for (let c = 0; c < CASES; c++) {
      const link = await sender(b);
      link.on('close', () => undefined);
      link.socket.on('error', () => undefined);
      const ctx = createContext(CACHE);
      link.sendJson(F.F_OPEN, 1, { mode: 'auto', target: 't0' });
      link.sendJson(F.F_OPEN, 2, { mode: 'auto', target: 't1' });
      // The rest of the stream, framed on the link's own chain, then damaged and written raw.
      const frames: Buffer[] = [];
      inputs.forEach((input, i) => {
        const bts = batchesOf(ctx, input);
        for (const bt of bts) frames.push(link.writer.frame(F.F_DATA, i + 1, bt.payload));
        frames.push(link.writer.frame(F.F_FIN, i + 1, F.totalsPayload({ batches: bts.length, bytes: input.length })));
      });
      const kind = (['flip', 'drop', 'repeat', 'cut'] as const)[c % 4];
      kinds[kind]++;
      const k = rng.int(frames.length);
      let wire: Buffer;
      if (kind === 'flip') {
        wire = Buffer.concat(frames);
        const bit = rng.int(wire.length * 8);
        wire[bit >> 3] ^= 1 << (bit & 7);
      } else if (kind === 'drop') wire = Buffer.concat(frames.filter((_, i) => i !== k));
      else if (kind === 'repeat') wire = Buffer.concat([...frames.slice(0, k + 1), frames[k], ...frames.slice(k + 1)]);
      else wire = Buffer.concat(frames.slice(0, k));
      link.socket.end(wire);
      const results = await Promise.all([b.sinks[0].results[c], b.sinks[1].results[c]]);
      results.forEach((r, i) => {
        if (r.ended === 'end') {
          assert.equal(r.hash, sha256(inputs[i]), `case ${c} (${kind}): session ${i + 1} ended cleanly with wrong bytes`);
          exact++;
        } else reset++;
      });
      // The one harmless damage: the last frame repeated after both sessions were complete.
      const harmless = kind === 'repeat' && k === frames.length - 1;
      assert.ok(results.some((r) => r.ended === 'reset') || harmless, `case ${c} (${kind} at frame ${k}): the damage went unnoticed`);
    }
  });
  console.log(`# live link damage: ${CASES} cases (${Object.entries(kinds).map(([k, v]) => `${k} ${v}`).join(', ')}): ${exact} sessions byte-exact with a clean end, ${reset} reset, 0 wrong`);
});
