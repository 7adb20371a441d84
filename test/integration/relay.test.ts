// A real relay pair (two `cloudnet relay` processes) on loopback with mutual TLS carries several
// concurrent migration-like streams; every destination must receive exactly the source bytes, and
// the return path must come back unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { startRelayCli } from '../env/relay-cli.ts';
import { Rng, syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { makePki, sendStream, sha256, startSink } from './relay-helpers.ts';
import { waitFor } from '../helpers/poll.ts';
import { freePort } from '../helpers/ports.ts';

/** Whether something accepts connections on loopback `port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
    s.on('error', () => r(false));
  });
}

test('relay pair over mutual TLS: concurrent sessions arrive byte-exact, return path intact', async (t) => {
  const pki = makePki();
  const sink = await startSink(4);
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await sink.close();
    pki.cleanup();
  });
  const [recvPort, recvStats, sendPort, sendStats] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const tlsArgs = ['--ca', pki.ca, '--key'];
  procs.push(startRelayCli(['receive', '--listen', `127.0.0.1:${recvPort}`, '--target', `mem=127.0.0.1:${sink.port}`,
    ...tlsArgs, pki.serverKey, '--cert', pki.serverCert, '--cache-mb', '64', '--stats', `127.0.0.1:${recvStats}`]));
  procs.push(startRelayCli(['send', '--listen', `127.0.0.1:${sendPort}/mem`, '--peer', `127.0.0.1:${recvPort}`,
    ...tlsArgs, pki.clientKey, '--cert', pki.clientCert, '--cache-mb', '64', '--stats', `127.0.0.1:${sendStats}`,
    // Fixed level: on loopback under CPU load the adaptive policy may store, and the ratio check would flake.
    '--level', '3']));
  // The stats ports open once the relays listen (probing the relay ports would open sessions).
  await waitFor(() => accepts(recvStats), { what: `the receiver's stats port ${recvStats}`, intervalMs: 100 });
  await waitFor(() => accepts(sendStats), { what: `the sender's stats port ${sendStats}`, intervalMs: 100 });

  const random = Buffer.alloc(3 << 20);
  new Rng(77).fill(random);
  const inputs = [
    syntheticQemuStream({ seed: 1, pages: 1500, rounds: 4 }),
    syntheticQemuStream({ seed: 2, pages: 1500, rounds: 4, contentSeed: 1 }), // same content: cross-VM dedup
    random, // not QEMU: generic mode
    Buffer.concat([random.subarray(0, 1 << 20), syntheticQemuStream({ seed: 3, pages: 500 })]),
  ];
  const replies = await Promise.all(inputs.map((b, i) => sendStream(sendPort, b, 10_000 + i * 7_000)));
  const got = await Promise.all(sink.results);
  const byHash = new Map(got.map((g) => [g.hash, g]));
  if (process.env.RELAY_TEST_DEBUG) console.log(got, inputs.map((b) => [b.length, sha256(b)]), replies);
  inputs.forEach((b, i) => {
    const h = sha256(b);
    assert.ok(byHash.has(h), `stream ${i} (${b.length} bytes) did not arrive byte-exact`);
    assert.equal(byHash.get(h)!.ended, 'end');
    assert.equal(replies[i].reply, `OK ${h}`, `return path of stream ${i}`);
  });

  const stats = await (await fetch(`http://127.0.0.1:${sendStats}/stats`)).json() as { finished: { closeReason: string; wireBytes: number; bytesIn: number; mode: string }[] };
  assert.equal(stats.finished.length, 4);
  assert.ok(stats.finished.every((s) => s.closeReason === 'ok'));
  const wire = stats.finished.reduce((a, s) => a + s.wireBytes, 0);
  const input = inputs.reduce((a, b) => a + b.length, 0);
  assert.ok(wire < input * 0.6, `wire ${wire} of ${input}`);
  const metrics = await (await fetch(`http://127.0.0.1:${sendStats}/metrics`)).text();
  assert.match(metrics, /cloudnet_relay_sessions_closed_total\{role="sender",reason="ok"\} 4/);
  assert.match(metrics, /cloudnet_relay_input_bytes_total\{technique="dedup"\} [1-9]/);
});
