// Seeding: content the target site already holds (here a "disk image", as the storage pre-copy
// would leave it) is announced by the receiver relay; NBD writes and RAM pages with that content
// then cross the link as references only, and still arrive byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/relay/tools/index.ts';
import { loadTls, ReceiverRelay, SenderRelay } from '../../src/relay/transport/index.ts';
import { makePki, sendStream, sha256, startSink } from './relay-helpers.ts';

function nbdWrites(image: Buffer, blocksPerWrite: number): Buffer {
  const parts: Buffer[] = [Buffer.from('client negotiation bytes')];
  const step = blocksPerWrite * 4096;
  for (let off = 0, cookie = 0; off < image.length; off += step, cookie++) {
    const data = image.subarray(off, off + step);
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0); h.writeUInt16BE(1, 6); h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(off), 16); h.writeUInt32BE(data.length, 24);
    parts.push(h, data);
  }
  return Buffer.concat(parts);
}

test('seeded target content turns NBD disk writes into references', async (t) => {
  const pki = makePki();
  const sink = await startSink(1);
  const receiver = new ReceiverRelay({
    listen: { host: '127.0.0.1', port: 0 }, targets: { disk: { host: '127.0.0.1', port: sink.port } },
    security: loadTls(pki.ca, pki.serverCert, pki.serverKey), cacheBytes: 8 << 20, seedBytes: 16 << 20,
  });
  const r = await receiver.start();
  const sender = new SenderRelay({
    listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 'disk', mode: 'nbd' }], peer: { host: '127.0.0.1', port: r.port },
    security: loadTls(pki.ca, pki.clientCert, pki.clientKey), cacheBytes: 8 << 20,
  });
  t.after(async () => { await sender.stop(); await receiver.stop(); await sink.close(); pki.cleanup(); });
  const [addr] = await sender.start();

  const image = Buffer.alloc(6 << 20);
  new Rng(42).fill(image); // incompressible: only the seed can make it cheap
  const seeded = receiver.seed(image.subarray(0, 4 << 20)); // the target holds the first 4 MiB
  assert.deepEqual(seeded, { blocks: 1024, added: 1024, full: false });
  await sender.connect();
  for (let i = 0; i < 100 && (sender.stats().remoteSeeds as number) < 1024; i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(sender.stats().remoteSeeds, 1024);

  const stream = nbdWrites(image, 32);
  const reply = await sendStream(addr.port, stream);
  const got = await sink.results[0];
  assert.equal(got.hash, sha256(stream));
  assert.equal(reply.reply, `OK ${sha256(stream)}`);
  const fin = (sender.stats().finished as { wireBytes: number; bytesIn: number; cacheHitRate: number }[])[0];
  // 4 of 6 MiB were seeded: the wire carries about the 2 MiB the target lacks, plus references.
  assert.ok(fin.wireBytes < 2.2e6, `wire ${fin.wireBytes} for ${fin.bytesIn} input bytes`);
  assert.ok(fin.cacheHitRate > 0.6);
});
