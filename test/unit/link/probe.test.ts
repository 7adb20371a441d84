import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { ECHO_REQUEST_BYTES, ProbeClient, ProbeResponder, ProbeWindow, median } from '../../../src/link/probe.ts';
import { waitFor } from '../../helpers/poll.ts';

test('echo over loopback returns an RTT and the responder identity; a dead port times out', async (t) => {
  const identity = { publicKey: 'pub', peerKeys: ['peer1'] };
  const responder = await ProbeResponder.listen(0, () => identity, '127.0.0.1');
  const client = await ProbeClient.open();
  t.after(async () => { await client.close(); await responder.close(); });
  const r = await client.echo('127.0.0.1', responder.port(), 1000);
  assert.ok(r !== undefined && Number.isFinite(r.rttMs), 'an RTT was measured');
  assert.deepEqual(r.identity, identity);
  const bw = await client.train('127.0.0.1', responder.port(), 16, 1200, 1000);
  assert.ok(bw !== undefined && bw > 0);
  const port = responder.port();
  await responder.close();
  assert.equal(await client.echo('127.0.0.1', port, 200), undefined);
});

test('probe window: minimum RTT, loss only after the link first came up, consecutive misses', () => {
  const w = new ProbeWindow(4);
  w.record(undefined);
  assert.equal(w.consecutiveMisses(), 1);
  assert.equal(w.lossRatio(), undefined);
  for (const x of [10, 30, 20]) w.record(x);
  assert.equal(w.consecutiveMisses(), 0);
  assert.equal(w.rttMs(), 10);
  w.record(undefined);
  assert.equal(w.lossRatio(), 0.25);
  w.record(undefined);
  w.record(undefined);
  assert.equal(w.consecutiveMisses(), 3);
  assert.equal(w.lossRatio(), 0.75);
  assert.equal(median([1, 2, 3, 4]), 2.5);
});

test('the responder never answers with more bytes than it received (no UDP amplification)', async (t) => {
  const responder = await ProbeResponder.listen(0, () => ({ publicKey: 'x'.repeat(44), peerKeys: ['y'.repeat(44), 'z'.repeat(44)] }), '127.0.0.1');
  const sock = createSocket('udp4');
  t.after(async () => { sock.close(); await responder.close(); });
  const replies: Array<{ seq: number; bytes: number }> = [];
  sock.on('message', (m) => replies.push({ seq: m.readUInt32BE(5), bytes: m.length }));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const req = (size: number, seq: number): Buffer => { const b = Buffer.alloc(size); b.write('CNP1'); b[4] = 1; b.writeUInt32BE(seq, 5); return b; };
  sock.send(req(15, 1), responder.port(), '127.0.0.1');
  sock.send(req(ECHO_REQUEST_BYTES, 2), responder.port(), '127.0.0.1');
  // Loopback keeps the order and the responder answers in order: a reply to the minimal request
  // (seq 1) would arrive before the full request's (seq 2), so no sleep is needed to rule it out.
  await waitFor(() => replies.some((r) => r.seq === 2), { what: 'the reply to the full-size request' });
  assert.deepEqual(replies.map((r) => r.seq), [2], 'a minimal request gets no identity reply');
  assert.ok(replies[0].bytes <= ECHO_REQUEST_BYTES);
});
