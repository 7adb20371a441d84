// Fault handling of the relay link with real TLS sockets on loopback: unauthenticated peers,
// version mismatch, corrupt frames, cache desync, truncated frames and a peer vanishing mid-page.
// The affected session is closed (the destination sees an abort, never wrong bytes) and the other
// sessions carry on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { loadTls, ReceiverRelay, relayRegistry, SenderRelay } from '../../src/relay/transport/index.ts';
// Not in the entries: this test speaks the link's handshake itself and crafts a bad op.
import { awaitHello, connectLink, HandshakeError, Link } from '../../src/relay/transport/link.ts';
import { createContext, F, packBatch, SessionEncoder } from '../../src/relay/codec/index.ts';
import { OP_CHUNK_REF } from '../../src/relay/codec/ops.ts';
import { Rng, syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { makePki, sendStream, sha256, silentCutProxy, startSink } from './relay-helpers.ts';
import type { Sink } from './relay-helpers.ts';

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = relayRegistry.getSingleMetric(name);
  if (!m) return 0;
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

const CACHE = 8 << 20;

interface Bed {
  receiver: ReceiverRelay;
  port: number;
  sinks: Sink[];
  pki: ReturnType<typeof makePki>;
}

async function bed(sinks: number, receiverOpts: { linkTimeoutMs?: number } = {}): Promise<Bed> {
  const pki = makePki();
  const s = await Promise.all(Array.from({ length: sinks }, () => startSink(1)));
  const targets: Record<string, { host: string; port: number }> = {};
  s.forEach((k, i) => { targets[`t${i}`] = { host: '127.0.0.1', port: k.port }; });
  const receiver = new ReceiverRelay({ listen: { host: '127.0.0.1', port: 0 }, targets, security: loadTls(pki.ca, pki.serverCert, pki.serverKey), cacheBytes: CACHE, ...receiverOpts });
  const { port } = await receiver.start();
  return { receiver, port, sinks: s, pki };
}

async function teardown(b: Bed): Promise<void> {
  await b.receiver.stop();
  await Promise.all(b.sinks.map((s) => s.close()));
  b.pki.cleanup();
}

/** Runs `body` against a fresh bed with `sinks` targets, torn down afterwards even if it throws. */
async function withBed(sinks: number, body: (b: Bed) => Promise<void>, receiverOpts: { linkTimeoutMs?: number } = {}): Promise<void> {
  const b = await bed(sinks, receiverOpts);
  try {
    await body(b);
  } finally {
    await teardown(b);
  }
}

/** A hand-driven sender: valid TLS identity, raw frames. */
async function fakeSender(b: Bed, version = F.PROTOCOL_VERSION): Promise<Link> {
  const socket = await connectLink({ host: '127.0.0.1', port: b.port }, loadTls(b.pki.ca, b.pki.clientCert, b.pki.clientKey));
  const link = new Link(socket);
  link.sendJson(F.F_HELLO, 0, { magic: 'cloudnet-relay', version, cacheBytes: CACHE, role: 'sender' });
  return link;
}

/** A hand-driven sender whose hello the receiver accepted. */
async function helloSender(b: Bed): Promise<Link> {
  const link = await fakeSender(b);
  await awaitHello(link);
  return link;
}

function closeFrames(link: Link): F.CloseInfo[] & { bySession: Map<number, F.CloseInfo> } {
  const list = [] as unknown as F.CloseInfo[] & { bySession: Map<number, F.CloseInfo> };
  list.bySession = new Map();
  link.on('frame', (f) => {
    if (f.type === F.F_CLOSE) {
      const c = JSON.parse(f.payload.toString()) as F.CloseInfo;
      list.push(c);
      list.bySession.set(f.session, c);
    }
  });
  return list;
}

test('unauthenticated peers are refused: no client certificate, or one from another CA', async () => {
  await withBed(1, async (b) => {
    const before = await metric('cloudnet_relay_peer_rejected_total', { reason: 'unauthenticated' });
    // No client certificate.
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: b.port, ca: fs.readFileSync(b.pki.ca), servername: 'localhost' });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('secureConnect', () => { s.write('x'); });
    });
    // A sender relay with a certificate of a rogue CA: its migration connection is refused.
    const rogue = new SenderRelay({
      listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't0', mode: 'auto' }], peer: { host: '127.0.0.1', port: b.port },
      security: loadTls(b.pki.ca, b.pki.rogueCert, b.pki.rogueKey), cacheBytes: CACHE,
    });
    const [addr] = await rogue.start();
    const r = await sendStream(addr.port, Buffer.alloc(100_000, 1));
    assert.equal(r.reply, '', 'nothing came back through a refused relay');
    await rogue.stop();
    await new Promise((r2) => setTimeout(r2, 100));
    assert.ok(await metric('cloudnet_relay_peer_rejected_total', { reason: 'unauthenticated' }) >= before + 2);
    assert.equal(b.sinks[0].server.listening, true);
  });
});

test('relay protocol version mismatch: the link is refused with a reason', async () => {
  await withBed(1, async (b) => {
    const before = await metric('cloudnet_relay_peer_rejected_total', { reason: 'version' });
    const link = await fakeSender(b, 99);
    await assert.rejects(awaitHello(link), (err: unknown) => err instanceof HandshakeError && err.reason === 'version');
    link.close('test');
    assert.equal(await metric('cloudnet_relay_peer_rejected_total', { reason: 'version' }), before + 1);
  });
});

test('corrupt frame, cache desync and truncation close only their sessions; others stay byte-exact', async () => {
  await withBed(5, async (b) => {
    const link = await helloSender(b);
    const closes = closeFrames(link);
    const ctx = createContext(CACHE);
    for (let i = 1; i <= 5; i++) link.sendJson(F.F_OPEN, i, { mode: 'auto', target: `t${i - 1}` });

    // Session 2 is healthy and interleaved with the bad ones. Sessions 5 and 99 share its cache:
    // their batches take cache slots at the sender, but the receiver cannot decode session 5's
    // first batch (so it skips its later ones too) and has never heard of session 99; it must
    // skip as many slots for session 2's later references to stay aligned.
    const good = syntheticQemuStream({ seed: 5, pages: 800, rounds: 3 });
    const batches: Buffer[] = [];
    const lostBatches: Buffer[] = [];
    const enc = new SessionEncoder(ctx, (bt) => batches.push(packBatch(bt.ops, bt.rawLen, 1, undefined, bt.inserts)), { batchOpBytes: 32 << 10 });
    const mid = 50_000 * Math.floor(good.length / 100_000);
    for (let o = 0; o < mid; o += 50_000) enc.write(good.subarray(o, o + 50_000));
    const half = batches.length;
    const lost = new SessionEncoder(ctx, (bt) => {
      const ops = Buffer.from(bt.ops);
      if (!lostBatches.length) ops[0] = 0xff; // an unknown op: nothing of this batch is decodable
      lostBatches.push(packBatch(ops, bt.rawLen, 0, undefined, bt.inserts));
    }, { mode: 'generic', batchOpBytes: 64 << 10 });
    const noise = Buffer.alloc(300 << 10);
    new Rng(77).fill(noise);
    lost.write(noise);
    lost.end();
    const strayBatches: Buffer[] = [];
    const stray = new SessionEncoder(ctx, (bt) => strayBatches.push(packBatch(bt.ops, bt.rawLen, 1, undefined, bt.inserts)), { mode: 'generic' });
    new Rng(78).fill(noise);
    stray.write(noise);
    stray.end();
    for (let o = mid; o < good.length; o += 50_000) enc.write(good.subarray(o, o + 50_000));
    enc.end();
    assert.ok(lostBatches.length > 2 && strayBatches.length > 0);
    for (const p of batches.slice(0, half)) link.send(F.F_DATA, 2, p);
    for (const p of lostBatches) link.send(F.F_DATA, 5, p);
    for (const p of strayBatches) link.send(F.F_DATA, 99, p);

    // Session 1: a reference to content the receiver never saw (cache desync).
    // (op, slot 5, a fingerprint no entry has)
    const ref = Buffer.alloc(10);
    ref[0] = OP_CHUNK_REF;
    ref[1] = 5;
    ref.fill(0xab, 2);
    link.send(F.F_DATA, 1, packBatch(ref, 4096, 0));
    // Session 3: a zstd payload that is garbage (corrupt frame).
    link.send(F.F_DATA, 3, Buffer.concat([Buffer.from([1, 0x80, 0x20, 0x80, 0x20, 0]), Buffer.alloc(200, 0x5a)]));
    // Session 4: valid prefix, then a batch announcing more output than its ops produce.
    const pre = Buffer.from('prefix bytes that are fine');
    link.send(F.F_DATA, 4, packBatch(Buffer.concat([Buffer.from([0x01, pre.length]), pre]), pre.length, 0));
    link.send(F.F_DATA, 4, packBatch(Buffer.from([0x01, 3, 1, 2, 3]), 10, 0));

    for (const p of batches.slice(half)) link.send(F.F_DATA, 2, p);
    link.send(F.F_FIN, 2, F.totalsPayload({ batches: batches.length, bytes: good.length }));
    const okResult = await b.sinks[1].results[0];
    assert.equal(okResult.hash, sha256(good), 'healthy session arrived byte-exact');
    assert.equal(okResult.ended, 'end');

    const r1 = await b.sinks[0].results[0];
    const r3 = await b.sinks[2].results[0];
    const r4 = await b.sinks[3].results[0];
    assert.deepEqual([r1.ended, r1.bytes], ['reset', 0]);
    assert.deepEqual([r3.ended, r3.bytes], ['reset', 0]);
    assert.equal(r4.ended, 'reset');
    assert.ok(r4.bytes === 0 || r4.bytes === pre.length, 'only the valid prefix may have been written');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closes.bySession.get(1)?.reason, 'cache-desync');
    assert.equal(closes.bySession.get(3)?.reason, 'corrupt');
    assert.equal(closes.bySession.get(4)?.reason, 'corrupt');
    assert.equal(closes.bySession.get(5)?.reason, 'corrupt');
    assert.equal((await b.sinks[4].results[0]).ended, 'reset');
    assert.ok(!closes.bySession.has(2));
    assert.ok(await metric('cloudnet_relay_sessions_closed_total', { role: 'receiver', reason: 'cache-desync' }) >= 1);
    link.close('test done');
  });
});

test('sender vanishes mid-page (truncated frame): the destination sees an abort after a correct prefix', async () => {
  await withBed(1, async (b) => {
    const link = await helloSender(b);
    link.sendJson(F.F_OPEN, 7, { mode: 'auto', target: 't0' });
    const input = syntheticQemuStream({ seed: 8, pages: 400, rounds: 2 });
    const batches: Buffer[] = [];
    const enc = new SessionEncoder(createContext(CACHE), (bt) => batches.push(packBatch(bt.ops, bt.rawLen, 1)), { batchOpBytes: 16 << 10 });
    enc.write(input);
    enc.end();
    assert.ok(batches.length > 4);
    for (const p of batches.slice(0, 3)) link.send(F.F_DATA, 7, p);
    const partial = link.writer.frame(F.F_DATA, 7, batches[3]);
    link.socket.write(partial.subarray(0, partial.length >> 1)); // cut in the middle of a frame
    await new Promise((r) => setTimeout(r, 100));
    link.socket.destroy();
    const r = await b.sinks[0].results[0];
    assert.equal(r.ended, 'reset');
    assert.ok(r.bytes > 0 && r.bytes < input.length);
    assert.equal(r.hash, sha256(input.subarray(0, r.bytes)), 'what arrived is an exact prefix');
  });
});

test('receiver relay disappears: the sender aborts the migration connection', async () => {
  await withBed(1, async (b) => {
    const sender = new SenderRelay({
      listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't0', mode: 'auto' }], peer: { host: '127.0.0.1', port: b.port },
      security: loadTls(b.pki.ca, b.pki.clientCert, b.pki.clientKey), cacheBytes: CACHE,
    });
    try {
      const [addr] = await sender.start();
      const s = net.connect(addr.port, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      s.write(syntheticQemuStream({ seed: 2, pages: 100 }).subarray(0, 50_000));
      await new Promise((r) => setTimeout(r, 300));
      const closed = new Promise<void>((r) => { s.on('close', () => r()); s.on('error', () => undefined); });
      await b.receiver.stop();
      await closed;
      assert.ok(await metric('cloudnet_relay_sessions_closed_total', { role: 'sender', reason: 'peer-lost' }) >= 1);
    } finally {
      await sender.stop();
    }
  });
});

test('a silent WAN cut (no FIN, no RST): both relays time the link out and abort the migration at both ends; idle, keepalives hold it', async () => {
  const TIMEOUT_MS = 1500;
  await withBed(1, async (b) => {
    const path = await silentCutProxy(b.port);
    const sender = new SenderRelay({
      listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't0', mode: 'auto' }], peer: { host: '127.0.0.1', port: path.port },
      security: loadTls(b.pki.ca, b.pki.clientCert, b.pki.clientKey), cacheBytes: CACHE, linkTimeoutMs: TIMEOUT_MS,
    });
    const lost = async () => ({
      sender: await metric('cloudnet_relay_sessions_closed_total', { role: 'sender', reason: 'peer-lost' }),
      receiver: await metric('cloudnet_relay_sessions_closed_total', { role: 'receiver', reason: 'peer-lost' }),
    });
    const before = await lost();
    try {
      const [addr] = await sender.start();
      const s = net.connect(addr.port, '127.0.0.1');
      let sourceClosed = false;
      const closed = new Promise<void>((r) => { s.on('close', () => { sourceClosed = true; r(); }); s.on('error', () => undefined); });
      await new Promise((r) => s.once('connect', r));
      s.write(syntheticQemuStream({ seed: 4, pages: 100 }).subarray(0, 50_000));
      // The session sits open with nothing to send for three timeouts: the keepalives hold the link.
      await new Promise((r) => setTimeout(r, 3 * TIMEOUT_MS));
      assert.equal(sourceClosed, false, 'an idle but healthy link was not timed out');
      assert.deepEqual(await lost(), before);
      // Now the path goes silent: each side hears nothing more and gives the link up.
      path.cut();
      await closed;
      const sink = await b.sinks[0].results[0];
      assert.equal(sink.ended, 'reset', 'the destination sees an abort, not a clean end');
      const after = await lost();
      assert.equal(after.sender, before.sender + 1, 'the sender aborted the session (peer-lost)');
      assert.equal(after.receiver, before.receiver + 1, 'the receiver aborted it too');
    } finally {
      await sender.stop();
      await path.close();
    }
  }, { linkTimeoutMs: TIMEOUT_MS });
});

test('a sender without keepalives (an older relay) is never timed out by the receiver', async () => {
  await withBed(1, async (b) => {
    const link = await helloSender(b);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(link.closed, false, 'the receiver kept the silent link');
      // One keepalive turns the receiver's timeout on for this link.
      link.send(F.F_PROBE, 0, Buffer.from([0x80, 0, 0, 1]));
      const why = await new Promise<string>((r) => link.once('close', r));
      assert.match(why, /link (closed|ended by peer)/);
    } finally {
      link.close('test over');
    }
  }, { linkTimeoutMs: 300 });
});

test('connecting across a silent path gives up after its timeout instead of the kernel\'s ~2 minutes of retries', async () => {
  await withBed(1, async (b) => {
    const path = await silentCutProxy(b.port);
    path.cut();
    try {
      await assert.rejects(connectLink({ host: '127.0.0.1', port: path.port }, loadTls(b.pki.ca, b.pki.clientCert, b.pki.clientKey), 300), /timed out after 0\.3 s/);
    } finally {
      await path.close();
    }
  });
});
