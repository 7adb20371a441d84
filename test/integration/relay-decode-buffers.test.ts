// The receiver's decode buffers are reused across batches, also when the destination reads slowly
// and a whole credit window of batches waits for it (a busy destination QEMU). A pool that kept
// fewer buffers than the window holds allocated fresh ones for every batch beyond it, and V8 then
// ran a full garbage collection every few dozen batches (src/relay/transport/output-pool.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { ReceiverRelay, SenderRelay } from '../../src/relay/transport/index.ts';
import { OutputPool } from '../../src/relay/transport/output-pool.ts';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { sendStream, sha256 } from './relay-helpers.ts';

const PLAIN = { kind: 'plain-inside-wireguard' } as const;

/** A destination that stops reading for a while after every `every` bytes: the relay's queue for
 *  it fills up to the sender's credit window again and again. */
async function slowSink(every: number, pauseMs: number): Promise<{ port: number; digests: Promise<string>[]; close(): void }> {
  const resolvers: ((h: string) => void)[] = [];
  const digests = Array.from({ length: 2 }, () => new Promise<string>((r) => resolvers.push(r)));
  let n = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const done = resolvers[n++];
    const h = crypto.createHash('sha256');
    let sinceBreak = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      sinceBreak += c.length;
      if (sinceBreak >= every) {
        sinceBreak = 0;
        s.pause();
        setTimeout(() => s.resume(), pauseMs);
      }
    });
    s.on('end', () => { done(h.digest('hex')); s.end(); });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, digests, close: () => server.close() };
}

type DecodeBuffers = { allocated: number; peakInUse: number; keptBytes: number };

function decodeBuffers(r: ReceiverRelay): DecodeBuffers {
  return (r.stats() as { decodeBuffers: DecodeBuffers }).decodeBuffers;
}

test('size classes: a QEMU batch of 512 KiB of ops plus its record fits the smallest; the 4 MiB bound plus a record one class', () => {
  assert.equal(OutputPool.classOf(1), 576 << 10);
  assert.equal(OutputPool.classOf((512 << 10) + 4200), 576 << 10);
  assert.equal(OutputPool.classOf((4 << 20) + 4200), (4 << 20) + (64 << 10));
  const pool = new OutputPool(1 << 20);
  const a = pool.take(100);
  const b = pool.take(100);
  pool.give(a);
  pool.give(b); // beyond the 1 MiB the pool keeps: dropped
  assert.equal(pool.kept, 576 << 10);
  assert.equal(pool.take(300 << 10), a);
  assert.equal(pool.allocated, 2);
  assert.equal(pool.peakInUse, 2);
});

test('a slow destination: buffers are allocated only while all kept ones are in use', async (t) => {
  const sink = await slowSink(4 << 20, 40);
  const receiver = new ReceiverRelay({ listen: { host: '127.0.0.1', port: 0 }, targets: { t: { host: '127.0.0.1', port: sink.port } }, security: PLAIN, cacheBytes: 64 << 20 });
  const { port } = await receiver.start();
  const sender = new SenderRelay({ listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't', mode: 'auto' }], peer: { host: '127.0.0.1', port }, security: PLAIN, cacheBytes: 64 << 20, level: 1 });
  const [listener] = await sender.start();
  t.after(async () => { await sender.stop(); await receiver.stop(); sink.close(); });

  // Two different streams (no cache hits between them), each many windows long.
  const inputs = [1, 2].map((seed) => syntheticQemuStream({ seed, pages: 12_000, rounds: 2 }));
  await sendStream(listener.port, inputs[0]);
  assert.equal(await sink.digests[0], sha256(inputs[0]));
  const first = decodeBuffers(receiver);
  await sendStream(listener.port, inputs[1]);
  assert.equal(await sink.digests[1], sha256(inputs[1]));
  const second = decodeBuffers(receiver);

  const stats = receiver.stats() as { maxBufferedBytes: number };
  // The queue did build up (the pauses worked), so the streams needed several buffers at once.
  assert.ok(stats.maxBufferedBytes >= 2 << 20, `queued at most ${stats.maxBufferedBytes} bytes`);
  assert.ok(second.peakInUse >= 3, `at most ${second.peakInUse} buffers in use at once`);
  // A buffer is allocated only when every kept one of its size is in use: two streams of ~80
  // batches each allocated no more than were ever in use at once. (A pool that kept four buffers
  // allocated ~60 per stream here.)
  assert.ok(second.allocated <= second.peakInUse, `${second.allocated} buffers allocated, at most ${second.peakInUse} in use at once (after the first stream: ${first.allocated})`);
});
