// A session the receiver closes mid-stream (its destination went away: the target QEMU was
// stopped by a rollback) must not take the shared cache out of lockstep: the batch the sender had
// open for it holds cache inserts the receiver must replay, or a later session that references
// that content fails with cache-desync. Seen in the e2e suite after a rolled-back migration; here
// on loopback: the same content goes first to a destination that resets mid-stream, then to a good
// one, which must receive it byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ReceiverRelay, SenderRelay } from '../../src/relay/transport/index.ts';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { sendStream, sha256, startSink } from './relay-helpers.ts';

test('a session closed by the receiver leaves the shared cache in lockstep for the next one', { timeout: 120_000 }, async (t) => {
  // Resets every connection once it has read ~1 MB: a destination that dies mid-stream.
  const dying = net.createServer((s) => {
    let n = 0;
    s.on('data', (c: Buffer) => { n += c.length; if (n > 1 << 20) s.resetAndDestroy(); });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => dying.listen(0, '127.0.0.1', r));
  const good = await startSink(4);
  const security = { kind: 'plain-inside-wireguard' as const };
  const receiver = new ReceiverRelay({
    listen: { host: '127.0.0.1', port: 0 }, security, cacheBytes: 32 << 20,
    targets: { dying: { host: '127.0.0.1', port: (dying.address() as net.AddressInfo).port }, good: { host: '127.0.0.1', port: good.port } },
  });
  const { port } = await receiver.start();
  const sender = new SenderRelay({
    listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 'dying', mode: 'auto' }, { addr: { host: '127.0.0.1', port: 0 }, target: 'good', mode: 'auto' }],
    peer: { host: '127.0.0.1', port }, security, cacheBytes: 32 << 20,
  });
  const [toDying, toGood] = await sender.start();
  t.after(async () => { await sender.stop(); await receiver.stop(); dying.close(); await good.close(); });

  for (let round = 0; round < 4; round++) {
    // Distinct content per round, the same content for both sessions of a round.
    const stream = syntheticQemuStream({ seed: 40 + round, pages: 3000, rounds: 2, randomFraction: 0.6, zeroFraction: 0.05 });
    const died = await sendStream(toDying.port, stream);
    assert.ok(died.error || !died.reply.startsWith('OK'), 'the dying destination aborted the first session');
    const ok = await sendStream(toGood.port, stream);
    assert.equal(ok.error, undefined, `round ${round}: ${ok.error}`);
    const got = await good.results[round];
    assert.equal(got.ended, 'end', `round ${round}: the good session was aborted (cache desync?)`);
    assert.equal(got.hash, sha256(stream), `round ${round}: byte-exact`);
  }
});
