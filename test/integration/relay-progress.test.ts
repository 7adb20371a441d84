// The operator's relay provider (src/operator/relay-client/relay-provider.ts) against a real relay
// pair: two migrations register their flows through the sender's API and stream QEMU-format data
// at the same moment; each WanMigration gets the figures of its own session, live and after the
// stream ended, because each session names the migration that registered its flow (no guessing
// by time or listener). Released registrations are gone; a relay that is down or silent yields a
// report and undefined progress, bounded in time, never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { RelayApiProvider } from '../../src/operator/relay-client/relay-provider.ts';
import { parseRelayApiSetting } from '../../src/operator/relay-client/relay-config.ts';
import { Phases, type WanMigration } from '../../src/api/wanmigration.ts';
import type { Site } from '../../src/api/site.ts';
import type { MigrationProgress } from '../../src/api/wanmigration.ts';
import { startSink } from './relay-helpers.ts';
import { openStream, startRelayPair, type RelayPair } from './relay-progress-helpers.ts';
import { waitFor } from '../helpers/poll.ts';

const site: Site = { metadata: { name: 'site-b' }, spec: { kubeconfigSecretRef: { namespace: 'cloudnet-system', name: 'site-b' } } };
const MEMORY = 64 << 20;

function migration(id: string, relay: Partial<NonNullable<WanMigration['spec']['relay']>> = {}): WanMigration {
  return {
    metadata: { name: id, namespace: 'vms' },
    spec: { vmName: id, targetSite: 'site-b', targetNamespace: 'vms', relay: { enabled: true, ...relay } },
    status: { migrationID: `uid-${id}`, phase: Phases.MigratingMemory, phaseStartTime: new Date().toISOString() },
  };
}

test('relay provider: registered flows, sessions attributed by registration, live and final', async (t) => {
  const sinkA = await startSink(1);
  const sinkB = await startSink(1);
  const sockets: net.Socket[] = [];
  const running: { relays?: RelayPair } = {};
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await running.relays?.stop();
    await sinkA.close();
    await sinkB.close();
  });
  const relays = (running.relays = await startRelayPair());
  const provider = new RelayApiProvider({ setting: parseRelayApiSetting(`site-b=${relays.apiUrl}`), token: relays.token, memoryBytes: async () => MEMORY });
  const a = migration('mig-a');
  const b = migration('mig-b', { compression: 'None', cacheSizeMiB: 0 });
  const progress = (m: WanMigration): Promise<MigrationProgress | undefined> => provider.progress({ migration: m, site }, AbortSignal.timeout(5000));
  assert.equal(await progress(a), undefined, 'nothing registered, no session');

  for (const [m, sink] of [[a, sinkA], [b, sinkB]] as const) {
    const r = await provider.register({ migration: m, site, encrypted: false, destinations: [{ host: '127.0.0.1', port: sink.port }] }, AbortSignal.timeout(5000));
    assert.equal(r.state, 'Ready', r.message);
    assert.equal(r.reason, 'FlowsIntercepted');
  }
  const again = await provider.register({ migration: a, site, encrypted: false, destinations: [{ host: '127.0.0.1', port: sinkA.port }] }, AbortSignal.timeout(5000));
  assert.equal(again.state, 'Ready', 'registering is idempotent');
  const clash = await provider.register({ migration: migration('mig-c'), site, encrypted: false, destinations: [{ host: '127.0.0.1', port: sinkA.port }] }, AbortSignal.timeout(5000));
  assert.equal(clash.state, 'Unavailable');
  assert.equal(clash.reason, 'FlowConflict', 'a flow belongs to one migration');
  const regs = await relays.api.registrations();
  assert.deepEqual(regs.find((x) => x.owner.migrationID === 'uid-mig-b')?.settings, { compression: 'None', dedup: true, deltaPages: true, cacheSizeMiB: 0, opaque: false }, 'the migration\'s relay settings reach the relay');

  // Both streams start at the same moment: time could not tell them apart, the registration does.
  const streamA = syntheticQemuStream({ seed: 5, pages: 1200, rounds: 3 });
  const streamB = syntheticQemuStream({ seed: 6, pages: 600, rounds: 2 });
  const [sa, sb] = await Promise.all([openStream(await relays.flowPort(`127.0.0.1:${sinkA.port}`)), openStream(await relays.flowPort(`127.0.0.1:${sinkB.port}`))]);
  sockets.push(sa.socket, sb.socket);
  const halfA = Math.floor(streamA.length / 2);
  await Promise.all([sa.write(streamA.subarray(0, halfA)), sb.write(streamB)]);
  sb.end();
  const liveA = await waitFor(async () => {
    const p = await progress(a);
    return p && (p.bytesSent ?? 0) >= halfA ? p : undefined;
  }, { what: 'a attributed with half its stream' });
  assert.equal(liveA.bytesTotal, MEMORY);
  assert.equal(liveA.bytesSent, halfA, 'exactly a\'s own bytes');
  assert.ok((liveA.bytesOverWan ?? 0) > 0 && (liveA.bytesOverWan ?? 0) < halfA, `WAN bytes ${liveA.bytesOverWan} of ${halfA}`);
  assert.ok(liveA.etaSeconds !== undefined && liveA.etaSeconds >= 0, 'an ETA while the stream runs');
  const finalB = await waitFor(async () => {
    const p = await progress(b);
    return p && p.bytesSent === streamB.length && p.etaSeconds === 0 ? p : undefined;
  }, { what: 'b complete' });
  assert.ok((finalB.bytesOverWan ?? 0) >= streamB.length, 'b (no cache, no compression) crosses the WAN at full size');

  await sa.write(streamA.subarray(halfA));
  sa.end();
  const finalA = await waitFor(async () => {
    const p = await progress(a);
    return p && p.bytesSent === streamA.length && p.etaSeconds === 0 ? p : undefined;
  }, { what: 'a complete' });
  assert.equal(finalA.rounds, 3);
  assert.ok((finalA.bytesOverWan ?? 0) < streamA.length / 2, `relay sent ${finalA.bytesOverWan} B for ${streamA.length} B`);
  const [gotA, gotB] = await Promise.all([sinkA.results[0], sinkB.results[0]]);
  assert.deepEqual([gotA.bytes, gotB.bytes], [streamA.length, streamB.length], 'each flow reached its own original destination');

  await provider.release({ migration: a, site }, AbortSignal.timeout(5000));
  await provider.release({ migration: b, site }, AbortSignal.timeout(5000));
  assert.deepEqual(await relays.api.registrations(), []);
  // A Site without a relay: nothing.
  assert.equal(await provider.progress({ migration: b, site: { ...site, metadata: { name: 'site-c' } } }, AbortSignal.timeout(5000)), undefined);
  assert.equal((await provider.register({ migration: b, site: { ...site, metadata: { name: 'site-c' } }, encrypted: false, destinations: [] }, AbortSignal.timeout(5000))).reason, 'NoRelayForSite');
});

test('relay provider: a relay that is down or silent yields a report and no progress, bounded in time', async (t) => {
  // Accepts connections and never answers: only the timeout ends the request.
  const silent = net.createServer(() => undefined);
  const held = new Set<net.Socket>();
  silent.on('connection', (s) => { held.add(s); s.on('close', () => held.delete(s)); });
  const sockPath = `/tmp/cloudnet-silent-${process.pid}.sock`;
  await new Promise<void>((r) => silent.listen(sockPath, r));
  t.after(() => { for (const s of held) s.destroy(); silent.close(); });
  const m = migration('mig-x');
  for (const url of ['unix:///nonexistent/relay-api.sock', `unix://${sockPath}`]) {
    const provider = new RelayApiProvider({ setting: parseRelayApiSetting(url), token: 'x'.repeat(32), timeoutMs: 300 });
    const t0 = Date.now();
    assert.equal(await provider.progress({ migration: m, site }, AbortSignal.timeout(10_000)), undefined, url);
    const r = await provider.register({ migration: m, site, encrypted: false, destinations: [{ host: '127.0.0.1', port: 1 }] }, AbortSignal.timeout(10_000));
    assert.equal(r.reason, 'RelayUnreachable', url);
    await provider.release({ migration: m, site }, AbortSignal.timeout(10_000)); // never holds a rollback hostage
    assert.ok(Date.now() - t0 < 3000, `${url}: took ${Date.now() - t0} ms`);
  }
});

/** A relay pair with its link probed, a provider on it, and a sink to name as the flow's destination. */
async function probedPair(t: { after(fn: () => Promise<void>): void }, o: { level: string; bypassAboveMbit: number }) {
  const sink = await startSink(1);
  const running: { relays?: RelayPair } = {};
  t.after(async () => { await running.relays?.stop(); await sink.close(); });
  const relays = (running.relays = await startRelayPair(o));
  await waitFor(async () => ((await relays.api.stats()) as { link?: { probe?: unknown } }).link?.probe, { what: 'the relay link probed', timeoutMs: 20_000, intervalMs: 100 });
  const provider = new RelayApiProvider({ setting: parseRelayApiSetting(`site-b=${relays.apiUrl}`), token: relays.token, memoryBytes: async () => MEMORY });
  const register = (m: WanMigration) => provider.register({ migration: m, site, encrypted: false, destinations: [{ host: '127.0.0.1', port: sink.port }] }, AbortSignal.timeout(5000));
  return { relays, provider, register, dest: `127.0.0.1:${sink.port}` };
}

test('relay provider: on a link the probe finds faster than the relay carries, flows bypass it', async (t) => {
  // Loopback probes at Gbit/s; a 1 Mbit/s threshold makes any link "faster than the relay".
  const { relays, provider, register, dest } = await probedPair(t, { level: 'auto', bypassAboveMbit: 1 });
  const m = migration('mig-fast');
  const r = await register(m);
  assert.equal(r.state, 'Unavailable');
  assert.equal(r.reason, 'LinkFasterThanRelay');
  assert.match(r.message, new RegExp(`^${dest}: the relay link probed at \\d+ Mbit/s`));
  const [reg] = await relays.api.registrations();
  assert.deepEqual(reg.flows, [{ destination: dest, localPort: 0 }], 'no local port: the gateway is not told to redirect the flow');
  assert.match(reg.bypass ?? '', /--bypass-above-mbit/);
  assert.match(((await relays.api.stats()) as { flowBypass?: string }).flowBypass ?? '', /probed at/, 'the stats say so too');
  assert.equal((await register(m)).reason, 'LinkFasterThanRelay', 're-registering keeps the decision');
  await provider.release({ migration: m, site }, AbortSignal.timeout(5000));
  assert.deepEqual(await relays.api.registrations(), []);
});

test('relay provider: with a fixed --level the relay never bypasses', async (t) => {
  const { register } = await probedPair(t, { level: '3', bypassAboveMbit: 1 });
  const r = await register(migration('mig-fixed'));
  assert.equal(r.reason, 'FlowsIntercepted', r.message);
});
