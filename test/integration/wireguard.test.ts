// wireguard-go between the two gateways over the emulated WAN: a node-to-node TCP transfer runs
// through the tunnel, cutting the WAN stops it, restoring the WAN lets it finish intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createSites } from '../env/wan.ts';
import { createWireGuard, WG_SOCKET_DIR } from '../env/wireguard.ts';
import { listNetns, run } from '../env/netns.ts';
import { runTransfer, startSink } from '../env/tcp-probe.ts';
import { waitFor } from '../helpers/poll.ts';

const PORT = 5202;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('TCP through WireGuard over the emulated WAN survives a cut and restore', { timeout: 180_000 }, async (t) => {
  const rateBps = 50e6;
  const sites = await createSites({ rateBps, delayMs: 10 });
  let wgIfs: string[] = [];
  try {
    const wg = await createWireGuard(sites);
    wgIfs = [wg.a.ifname, wg.b.ifname];
    const sink = await startSink(sites.b.nodeNs, PORT, { progressMs: 50, hash: true });

    const bytes = 16e6;
    const transfer = runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, bytes, { rttSamples: 3, hash: true, timeoutMs: 120_000 });
    transfer.catch(() => undefined); // awaited below; avoid an unhandled rejection while we cut the link
    await waitFor(() => sink.progressBytes() >= 2e6, { what: '2 MB through the tunnel', timeoutMs: 30_000 });

    await sites.setLink({ down: true });
    const cutAt = sink.progressBytes();
    // Let the sink drain what crossed before the cut (it may be descheduled on a busy machine):
    // wait for its count to hold still for 300 ms.
    for (let last = -1, deadline = Date.now() + 10_000; sink.progressBytes() !== last && Date.now() < deadline; ) {
      last = sink.progressBytes();
      await sleep(300);
    }
    const s1 = await sites.stats();
    const p1 = sink.progressBytes();
    await sleep(1500);
    const s2 = await sites.stats();
    const p2 = sink.progressBytes();
    assert.equal(s2.ab.txBytes, s1.ab.txBytes, 'the cut WAN delivered A→B bytes');
    assert.equal(s2.ba.txBytes, s1.ba.txBytes, 'the cut WAN delivered B→A bytes');
    assert.ok(s2.ab.dropDown > s1.ab.dropDown, 'no retransmissions were dropped during the cut');
    assert.equal(p2, p1, `traffic kept flowing through a cut link (${p1} → ${p2} bytes)`);
    assert.ok(p2 < bytes, 'transfer finished before the cut; make it bigger');

    await sites.setLink({ down: false });
    const r = await transfer;
    assert.equal(r.bytes, bytes);
    assert.equal(r.sha256Match, true, 'bytes through the tunnel were corrupted');
    const line =
      `through WireGuard at ${rateBps / 1e6} Mbit/s, 20 ms RTT: steady ${(r.steadyBps / 1e6).toFixed(2)} Mbit/s, ` +
      `cut at ${(cutAt / 1e6).toFixed(1)} MB, finished ${(r.elapsedMs / 1000).toFixed(1)} s after start`;
    t.diagnostic(line);
    console.log(`wireguard test: ${line}`);

    const show = await sites.exec(sites.a.gwNs, 'wg', ['show', wg.a.ifname, 'transfer']);
    assert.match(show.stdout, /\t\d+\t\d+/);
    await sink.stop();
    await wg.destroy();
    await wg.destroy(); // idempotent
    for (const ifname of wgIfs) assert.equal(existsSync(`${WG_SOCKET_DIR}/${ifname}.sock`), false, `${ifname}.sock left behind`);
    // With the tunnel gone the sites route over the plain WAN again.
    const plain = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT + 1, 0, { rttSamples: 0 }).catch((e: Error) => e);
    assert.ok(plain instanceof Error, 'no sink on PORT+1, connection must be refused');
    assert.match(plain.message, /ECONNREFUSED/);
  } finally {
    await sites.destroy();
  }
  assert.deepEqual(listNetns().filter((ns) => sites.namespaces.includes(ns)), []);
  const wgProcs = await run('pgrep', ['-f', `wireguard-go -f ${wgIfs[0] ?? 'none'}`], { allowFail: true });
  assert.equal(wgProcs.stdout.trim(), '', 'wireguard-go still running');
  for (const ifname of wgIfs) assert.equal(existsSync(`${WG_SOCKET_DIR}/${ifname}.sock`), false);
});
