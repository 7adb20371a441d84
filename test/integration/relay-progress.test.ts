// The operator's relay progress reader against a real relay pair (`cloudnet relay send --stats` and
// `cloudnet relay receive`, plain TCP on loopback): two staggered migrations stream QEMU-format
// data through one listener, and each WanMigration gets the figures of its own session, live and
// after the stream ended. An unreachable, silent or aborted relay yields undefined, never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { RelayProgressReader } from '../../src/operator/relay-client/progress-reader.ts';
import { parseRelayStatsSetting, relayFor } from '../../src/operator/relay-client/progress-config.ts';
import { Phases, type Phase, type WanMigration } from '../../src/api/wanmigration.ts';
import type { Site } from '../../src/api/site.ts';
import type { MigrationProgress } from '../../src/api/wanmigration.ts';
import { startSink } from './relay-helpers.ts';
import { freePort } from '../helpers/ports.ts';
import { openStream, startRelayPair, type RelayPair } from './relay-progress-helpers.ts';
import { waitFor } from '../helpers/poll.ts';

const site: Site = { metadata: { name: 'site-b' }, spec: { kubeconfigSecretRef: { namespace: 'cloudnet-system', name: 'site-b' } } };
const MEMORY = 64 << 20;

function migration(id: string, phase: Phase, phaseStartTime = new Date().toISOString()): WanMigration {
  return {
    metadata: { name: id, namespace: 'vms' },
    spec: { vmName: id, targetSite: 'site-b', targetNamespace: 'vms', relay: { enabled: true } },
    status: { migrationID: id, phase, phaseStartTime },
  };
}

test('relay progress reader: real sender stats over HTTP, per-migration sessions, live and final', async (t) => {
  const sink = await startSink(2);
  const sockets: net.Socket[] = [];
  const running: { relays?: RelayPair } = {};
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await running.relays?.stop();
    await sink.close();
  });
  const { sendPort, statsUrl } = (running.relays = await startRelayPair(sink.port));

  let a = migration('mig-a', Phases.MigratingMemory, new Date(Date.now() - 1000).toISOString());
  let b = migration('mig-b', Phases.AwaitingCutover);
  const reader = new RelayProgressReader({
    relayFor: relayFor(parseRelayStatsSetting(`site-b=${statsUrl}`)),
    migrations: () => [a, b],
    memoryBytes: async () => MEMORY,
  });
  const progress = (m: WanMigration): Promise<MigrationProgress | undefined> => reader.progress({ migration: m, site }, AbortSignal.timeout(5000));
  assert.equal(await progress(a), undefined, 'no session yet');
  // All of `stream` counted for `m`, nothing left (loopback is fast: the ETA may reach 0 before the end).
  const complete = (m: WanMigration, stream: Buffer): Promise<MigrationProgress> => waitFor(async () => {
    const p = await progress(m);
    return p && p.bytesSent === stream.length && p.etaSeconds === 0 ? p : undefined;
  }, { what: `${m.metadata?.name} complete` });

  // Migration a: 3 pre-copy rounds, written in two parts; the session stays open in between.
  const streamA = syntheticQemuStream({ seed: 5, pages: 1200, rounds: 3 });
  const sa = await openStream(sendPort);
  sockets.push(sa.socket);
  const halfA = Math.floor(streamA.length / 2);
  await sa.write(streamA.subarray(0, halfA));
  const liveA = await waitFor(async () => {
    const p = await progress(a);
    return p && (p.bytesSent ?? 0) >= halfA ? p : undefined;
  }, { what: 'a attributed with half its stream' });
  assert.equal(liveA.bytesTotal, MEMORY);
  assert.ok((liveA.bytesOverWan ?? 0) > 0 && (liveA.bytesOverWan ?? 0) < halfA, `WAN bytes ${liveA.bytesOverWan} of ${halfA}`);
  assert.ok((liveA.rounds ?? 0) >= 1);
  assert.ok(liveA.reductionRatio !== undefined && liveA.reductionRatio > 0 && liveA.reductionRatio < 1, `ratio ${liveA.reductionRatio}`);
  assert.ok(liveA.etaSeconds !== undefined && liveA.etaSeconds >= 0, 'an ETA while the stream runs');

  // Migration b starts migrating memory now, and its stream comes in on the same listener.
  b = migration('mig-b', Phases.MigratingMemory);
  const streamB = syntheticQemuStream({ seed: 6, pages: 600, rounds: 2 });
  const sb = await openStream(sendPort);
  sockets.push(sb.socket);
  await sb.write(streamB);
  sb.end();
  // b gets exactly its own stream's bytes.
  const finalB = await complete(b, streamB);
  assert.equal(finalB.rounds, 2);
  const stillA = await progress(a);
  assert.equal(stillA?.bytesSent, liveA.bytesSent, 'a keeps its own session, not b\'s');

  await sa.write(streamA.subarray(halfA));
  sa.end();
  const finalA = await complete(a, streamA);
  assert.equal(finalA.rounds, 3);
  assert.ok((finalA.bytesOverWan ?? 0) < streamA.length / 2, `relay sent ${finalA.bytesOverWan} B for ${streamA.length} B`);
  const got = await Promise.all(sink.results);
  assert.deepEqual(got.map((g) => g.bytes).sort((x, y) => x - y), [streamB.length, streamA.length].sort((x, y) => x - y));

  // Once a's record is gone from the migration list and a leaves MigratingMemory, nothing changes for b.
  a = migration('mig-a', Phases.Succeeded);
  assert.equal((await progress(b))?.bytesSent, streamB.length);
  // A Site without a relay: no reader output.
  assert.equal(await reader.progress({ migration: b, site: { ...site, metadata: { name: 'site-c' } } }, AbortSignal.timeout(5000)), undefined);
});

test('relay progress reader: a relay that is down, silent or slow yields undefined, bounded in time', async (t) => {
  const closedPort = await freePort();
  // Accepts connections and never answers: only the timeout ends the request.
  const silent = net.createServer(() => undefined);
  const held = new Set<net.Socket>();
  silent.on('connection', (s) => { held.add(s); s.on('close', () => held.delete(s)); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => { for (const s of held) s.destroy(); silent.close(); });
  const silentPort = (silent.address() as net.AddressInfo).port;
  const m = migration('mig-x', Phases.MigratingMemory);
  for (const url of [`http://127.0.0.1:${closedPort}`, `http://127.0.0.1:${silentPort}`, 'file:///nonexistent/relay-stats.json']) {
    const reader = new RelayProgressReader({ relayFor: () => url, timeoutMs: 300 });
    const t0 = Date.now();
    assert.equal(await reader.progress({ migration: m, site }, AbortSignal.timeout(10_000)), undefined, url);
    assert.ok(Date.now() - t0 < 3000, `${url}: took ${Date.now() - t0} ms`);
  }
  // The reconcile's own signal ends the request as well.
  const reader = new RelayProgressReader({ relayFor: () => `http://127.0.0.1:${silentPort}`, timeoutMs: 60_000 });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const t0 = Date.now();
  assert.equal(await reader.progress({ migration: m, site }, ac.signal), undefined);
  assert.ok(Date.now() - t0 < 3000);
});
