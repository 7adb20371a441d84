// Acceptance: a real QEMU (TCG) live migration through the relay pair (mutual TLS on loopback).
// Recording tees sit before the sender relay and after the receiver relay: the bytes QEMU sent
// and the bytes the destination QEMU received must be identical, the migration must complete, and
// the guest must keep running on the destination. The relays' own stream hashes (--hash-streams,
// which the WAN test and bench:wan rely on where no tap can sit) must agree with the taps.
// The same over the emulated WAN, with relay processes in the site namespaces, is relay-wan.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { migrate, formatMigration } from '../../src/qemu/migrate.ts';
import { startStreamTee } from '../../src/qemu/stream-tee.ts';
import { freePort } from '../helpers/ports.ts';
import { loadTls, ReceiverRelay, SenderRelay } from '../../src/relay/transport/index.ts';
import { createGuestLab } from '../env/qemu.ts';
import { makePki } from './relay-helpers.ts';

const fileSha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('QEMU live migration through the relay pair: completes, guest keeps running, stream byte-exact', { timeout: 180_000 }, async (t) => {
  const lab = createGuestLab('cloudnet-relay-qemu-');
  const pki = makePki();
  const cleanups: (() => Promise<void> | void)[] = [];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
    await lab.destroy();
    pki.cleanup();
  });
  const workload = { name: 'memwriter' as const, params: { 'wss-mb': 16, 'dirty-mbps': 4, mix: 'zero:20,dup:20,random:20,text:40' } };
  const src = await lab.start({ name: 'relay-src', workload, memoryMiB: 128 });
  await src.serial.waitFor(/MW READY/, 60_000);
  const dst = await lab.start({ name: 'relay-dst', workload, memoryMiB: 128, incoming: true });
  const port = await freePort();

  const outRec = path.join(lab.dir, 'out.qemu');
  const inRec = path.join(lab.dir, 'in.qemu');
  const teeOut = await startStreamTee({ targetHost: '127.0.0.1', targetPort: port, recordPath: outRec });
  cleanups.push(() => teeOut.close());
  const receiver = new ReceiverRelay({
    listen: { host: '127.0.0.1', port: 0 }, targets: { mem: { host: '127.0.0.1', port: teeOut.port } },
    security: loadTls(pki.ca, pki.serverCert, pki.serverKey), cacheBytes: 64 << 20, hashStreams: true,
  });
  const r = await receiver.start();
  cleanups.push(() => receiver.stop());
  const sender = new SenderRelay({
    listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 'mem', mode: 'auto' }], peer: { host: '127.0.0.1', port: r.port },
    security: loadTls(pki.ca, pki.clientCert, pki.clientKey), cacheBytes: 64 << 20,
    // Fixed: on loopback the link is never the bottleneck, so the adaptive policy would store.
    level: 3,
    hashStreams: true,
  });
  const [s] = await sender.start();
  cleanups.push(() => sender.stop());
  const teeIn = await startStreamTee({ targetHost: '127.0.0.1', targetPort: s.port, recordPath: inRec });
  cleanups.push(() => teeIn.close());

  const result = await migrate({
    source: src.qmp, destination: dst.qmp, incomingUri: `tcp:127.0.0.1:${port}`, uri: `tcp:127.0.0.1:${teeIn.port}`,
    // Capped so that the dirtying guest needs several pre-copy rounds on loopback.
    parameters: { 'max-bandwidth': 32 * 1024 * 1024, 'downtime-limit': 300 },
    timeoutMs: 120_000,
  });
  console.log(`[relay-qemu] ${formatMigration(result)}`);
  assert.equal(result.status, 'completed', result.error);
  assert.equal(result.destinationStatus, 'running');
  const from = dst.serial.count;
  await dst.serial.waitFor(/HB \d+/, 15_000, from);
  await dst.serial.waitFor(/HB \d+/, 15_000, dst.serial.count); // and keeps beating
  const beats = [...src.serial.heartbeats(), ...dst.serial.heartbeats()];
  assert.ok(beats.every((h, i) => i === 0 || h.n > beats[i - 1].n), 'heartbeat counter continues on the destination');

  await teeIn.drained();
  await teeOut.drained();
  const inBytes = fs.statSync(inRec).size;
  assert.ok(inBytes > 1e6, `recorded only ${inBytes} bytes`);
  const sent = fileSha(inRec);
  assert.equal(fileSha(outRec), sent, 'destination received exactly what the source sent');

  type SenderSession = { mode: string; syncLost?: string; bytesIn: number; wireBytes: number; rounds: unknown[]; inputSha256?: string };
  // A finished session is filed once its stream hash (on the relay's hashing worker) is in.
  let sess: SenderSession | undefined;
  for (let i = 0; i < 50 && !sess; i++) {
    sess = (sender.stats() as { finished: SenderSession[] }).finished[0];
    if (!sess) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(sess, 'the sender relay files the finished session');
  console.log(`[relay-qemu] stream ${inBytes} B -> relay link ${sess.wireBytes} B (${(100 * sess.wireBytes / inBytes).toFixed(1)}%), rounds seen ${sess.rounds.length}, mode ${sess.mode}`);
  assert.equal(sess.mode, 'qevm');
  assert.equal(sess.syncLost, undefined);
  assert.equal(sess.bytesIn, inBytes);
  assert.ok(sess.wireBytes < inBytes * 0.8);
  assert.equal(sess.inputSha256, sent, "the sender relay's hash of its input matches the tap");
  // The batches were compressed on the relay's compression threads, off its event loop.
  const compression = (sender.stats() as { compression: { threads: number; cpuSeconds: number } }).compression;
  assert.ok(compression.threads >= 1 && compression.cpuSeconds > 0, `compression threads in the stats: ${JSON.stringify(compression)}`);
  const received = async (): Promise<string | undefined> => {
    for (let i = 0; i < 50; i++) {
      const h = (receiver.stats() as { finished?: { outputSha256?: string }[] }).finished?.[0]?.outputSha256;
      if (h) return h;
      await new Promise((r) => setTimeout(r, 100)); // the receiver files the session once QEMU's side closes
    }
    return undefined;
  };
  assert.equal(await received(), sent, "the receiver relay's hash of its output matches the tap");
});
