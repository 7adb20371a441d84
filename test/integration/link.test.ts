// Site VPN link acceptance (issue 6): real wireguard-go in the two gateway namespaces of the
// emulated WAN, driven by the `cloudnet gateway` agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { generateKeyPair } from '../../src/link/keys.ts';
import { listNetns, nsExec } from '../env/netns.ts';
import { runTransfer, startSink } from '../env/tcp-probe.ts';
import { createLinkBed, diagnostics, type LinkBed } from './link-bed.ts';
import { waitFor } from '../helpers/poll.ts';

const ONE_WAY_MS = 50;
/** The outage-detection bound stated in src/link/status.ts for the default probe settings. */
const DETECT_BOUND_MS = 5000;

function bothReady(bed: LinkBed): boolean {
  return !!(bed.a.state()?.link?.ready && bed.b.state()?.link?.ready);
}

test('link comes up, measures the emulated RTT within 10%, carries LAN traffic, and reports a WAN cut within the bound', { timeout: 180_000 }, async (t) => {
  const bed = await createLinkBed({ wan: { delayMs: ONE_WAY_MS }, extraB: ['--metrics-port', '9470'] });
  t.after(() => bed.stop());
  const diag = (): string => diagnostics(bed);
  const t0 = Date.now();
  await waitFor(() => bothReady(bed), { what: 'LinkReady on both gateways', timeoutMs: 40_000, diagnostics: diag });
  t.diagnostic(`link ready after ${Date.now() - t0} ms`);

  // Ten more probe rounds so the RTT median is over steady-state samples only.
  await new Promise((r) => setTimeout(r, 11_000));
  const want = 2 * ONE_WAY_MS;
  for (const g of [bed.a, bed.b]) {
    const link = g.state()?.link;
    assert.ok(link?.ready, diag());
    assert.equal(link.reason, 'LinkUp');
    t.diagnostic(`${g.side}: rtt ${link.rttMs} ms (emulated ${want}), loss ${link.lossRatio}, bandwidth ~${link.bandwidthBps} B/s`);
    assert.ok(link.rttMs !== undefined && Math.abs(link.rttMs - want) <= 0.1 * want, `rtt ${link.rttMs} not within 10% of ${want}`);
    assert.ok(link.bandwidthBps !== undefined && link.bandwidthBps > 0);
  }

  // Prometheus metrics on the gateway's metrics port.
  const scrape = (await nsExec(bed.sites.b.gwNs, process.execPath, ['-e',
    "fetch('http://127.0.0.1:9470/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"])).stdout;
  assert.match(scrape, /cloudnet_link_up\{site="site-b",peer="site-a"\} 1/);
  assert.match(scrape, /cloudnet_link_rtt_seconds\{site="site-b",peer="site-a"\} 0\.1\d*/);
  assert.match(scrape, /cloudnet_link_loss_ratio\{/);
  assert.match(scrape, /cloudnet_link_bandwidth_bytes_per_second\{/);

  // The peer site's LAN is routed into the tunnel, and a byte-exact TCP transfer crosses it.
  const route = (await nsExec(bed.sites.a.gwNs, 'ip', ['route', 'get', bed.sites.b.nodeIp])).stdout;
  assert.match(route, new RegExp(`dev ${bed.a.ifname}`));
  const sink = await startSink(bed.sites.b.nodeNs, 5201, { hash: true });
  t.after(() => sink.stop());
  const xfer = await runTransfer(bed.sites.a.nodeNs, bed.sites.b.nodeIp, 5201, 2 << 20, { hash: true, rttSamples: 3, timeoutMs: 60_000 });
  assert.equal(xfer.sha256Match, true);
  // TCP connect RTT node→node through gateways and tunnel matches the emulated WAN too.
  t.diagnostic(`TCP connect RTT through the tunnel: ${xfer.rttMedianMs.toFixed(1)} ms`);

  // Cut the WAN: LinkReady=False within the stated bound, on both sides.
  const cutAt = Date.now();
  await bed.sites.setLink({ down: true });
  await waitFor(() => !bed.a.state()?.link?.ready && !bed.b.state()?.link?.ready, { what: 'LinkReady=False after the cut', timeoutMs: 20_000, diagnostics: diag });
  const detectMs = Date.now() - cutAt;
  t.diagnostic(`cut detected after ${detectMs} ms (bound ${DETECT_BOUND_MS} ms): ${bed.a.state()?.link?.reason} / ${bed.b.state()?.link?.reason}`);
  assert.equal(bed.a.state()?.link?.reason, 'PeerUnreachable', diag());
  assert.equal(bed.b.state()?.link?.reason, 'PeerUnreachable', diag());
  assert.ok(detectMs <= DETECT_BOUND_MS, `cut detected after ${detectMs} ms, bound ${DETECT_BOUND_MS} ms`);

  const restoreAt = Date.now();
  await bed.sites.setLink({ down: false });
  await waitFor(() => bothReady(bed), { what: 'LinkReady=True after restoring the WAN', timeoutMs: 30_000, diagnostics: diag });
  t.diagnostic(`recovered ${Date.now() - restoreAt} ms after the WAN was restored`);

  for (const g of [bed.a, bed.b]) {
    const reasons = g.events().map((e) => e.reason);
    const down = reasons.lastIndexOf('LinkDown');
    assert.ok(down >= 0 && reasons.lastIndexOf('LinkUp') > down, `events: ${reasons.join(',')}`);
  }

  // A crashed data plane is restarted and re-handshakes by itself.
  const pids = (await nsExec(bed.sites.b.gwNs, 'ip', ['netns', 'pids', bed.sites.b.gwNs])).stdout.split('\n').filter(Boolean);
  const wgPid = pids.map(Number).find((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'wireguard-go'; } catch { return false; } });
  assert.ok(wgPid, 'wireguard-go of gateway b not found');
  const killedAt = Date.now() / 1000;
  process.kill(wgPid, 'SIGKILL');
  await waitFor(() => bed.b.events().some((e) => e.reason === 'DataPlaneRestarted'), { what: 'gateway b to restart wireguard-go', timeoutMs: 15_000, diagnostics: diag });
  await waitFor(() => bothReady(bed) && (bed.b.state()?.link?.latestHandshakeSec ?? 0) >= killedAt - 1, { what: 'a fresh handshake after the restart', timeoutMs: 30_000, diagnostics: diag });
  t.diagnostic(`data plane restarted and re-handshaken ${Math.round(Date.now() - killedAt * 1000)} ms after wireguard-go was killed`);
});

test('a key rotation during a running transfer loses no bytes', { timeout: 180_000 }, async (t) => {
  // 40 Mbit/s keeps a 24 MiB transfer running for ~5 s, across the whole rotation.
  const bed = await createLinkBed({ wan: { delayMs: 10, rateBps: 40e6 } });
  t.after(() => bed.stop());
  const diag = (): string => diagnostics(bed);
  await waitFor(() => bothReady(bed), { what: 'LinkReady on both gateways', timeoutMs: 40_000, diagnostics: diag });
  const oldKey = bed.a.state()?.publicKey;
  assert.ok(oldKey, diag());

  const sink = await startSink(bed.sites.b.nodeNs, 5202, { hash: true, progressMs: 20 });
  t.after(() => sink.stop());
  const bytes = 24 << 20;
  const started = Date.now();
  const transfer = runTransfer(bed.sites.a.nodeNs, bed.sites.b.nodeIp, 5202, bytes, { hash: true, rttSamples: 1, timeoutMs: 120_000 });
  await waitFor(() => sink.progressBytes() > 2 << 20, { what: 'the transfer to get going', timeoutMs: 30_000, diagnostics: diag });
  const rotateAt = Date.now();
  // Longest time the receiver saw no progress, sampled every 20 ms: the rotation's tunnel gap.
  let lastBytes = sink.progressBytes(), lastMove = Date.now(), maxStallMs = 0, maxStallAt = 0;
  const sampler = setInterval(() => {
    const b = sink.progressBytes();
    if (b !== lastBytes) { lastBytes = b; lastMove = Date.now(); } else if (b < bytes && Date.now() - lastMove > maxStallMs) {
      maxStallMs = Date.now() - lastMove;
      maxStallAt = lastMove;
    }
  }, 20);
  t.after(() => clearInterval(sampler));
  bed.a.proc.kill('SIGUSR1');
  const newKey = await waitFor(() => {
    const s = bed.a.state();
    return s && s.publicKey !== oldKey && !s.nextPublicKey ? s.publicKey : undefined;
  }, { what: 'gateway a to switch to its next key', timeoutMs: 30_000, diagnostics: diag });
  const rotatedMs = Date.now() - rotateAt;
  await waitFor(() => bed.b.state()?.peerKeys?.join() === newKey, { what: 'gateway b to carry traffic on the new key only', timeoutMs: 10_000, diagnostics: diag });
  const progressAtRotation = sink.progressBytes();
  const result = await transfer;
  clearInterval(sampler);
  const totalMs = Date.now() - started;
  const switchedAt = Date.parse(bed.a.events().find((e) => e.reason === 'KeyRotated')?.time ?? '');
  t.diagnostic(`rotation took ${rotatedMs} ms, finished with ${progressAtRotation} of ${bytes} bytes delivered; transfer ${totalMs} ms, sha256 match ${result.sha256Match}; `
    + `longest receive stall ${maxStallMs} ms, starting ${maxStallAt - switchedAt} ms after gateway a switched keys`);
  assert.ok(progressAtRotation < bytes, 'the rotation completed while the transfer was still running');
  assert.equal(result.bytes, bytes);
  assert.equal(result.sha256Match, true);

  // The old key is gone from the peer's interface; the link is still ready on the new key.
  const dump = execFileSync('ip', ['netns', 'exec', bed.sites.b.gwNs, 'wg', 'show', bed.b.ifname, 'peers'], { encoding: 'utf8' }).trim();
  assert.equal(dump, newKey);
  await waitFor(() => bothReady(bed), { what: 'LinkReady after the rotation', timeoutMs: 10_000, diagnostics: diag });
  assert.ok(bed.a.events().some((e) => e.reason === 'KeyRotated'), `a events: ${bed.a.events().map((e) => e.reason).join(',')}`);
  assert.ok(bed.b.events().some((e) => e.reason === 'PeerKeyRotated'), `b events: ${bed.b.events().map((e) => e.reason).join(',')}`);
});

test('a wrong peer key is refused and named in the condition; an unsafe range is ConfigInvalid', { timeout: 180_000 }, async (t) => {
  const wrong = generateKeyPair().publicKey;
  const bed = await createLinkBed({ extraA: ['--peer-public-key', wrong] });
  t.after(() => bed.stop());
  const diag = (): string => diagnostics(bed);
  await waitFor(() => bed.a.state()?.link?.reason === 'PeerKeyMismatch' && bed.b.state()?.link?.reason === 'PeerKeyMismatch', { what: 'PeerKeyMismatch on both gateways', timeoutMs: 40_000, diagnostics: diag });
  const a = bed.a.state()?.link, b = bed.b.state()?.link;
  t.diagnostic(`a: ${a?.message}`);
  t.diagnostic(`b: ${b?.message}`);
  assert.equal(a?.ready, false);
  assert.match(a?.message ?? '', /presents WireGuard public key .* configured with peer key/);
  assert.match(b?.message ?? '', /does not accept this gateway's public key/);
  assert.equal(a?.latestHandshakeSec, 0, 'no handshake may complete with a wrong key');
  assert.ok(bed.a.events().some((e) => e.reason === 'LinkDown' && e.message.startsWith('PeerKeyMismatch')));

  // Asking for a default route through the peer without allowDefaultRoute is refused, not applied.
  await bed.restart('a', ['--peer-network', '0.0.0.0/0']);
  await waitFor(() => bed.a.state()?.link?.reason === 'ConfigInvalid', { what: 'ConfigInvalid', timeoutMs: 30_000, diagnostics: diag });
  assert.match(bed.a.state()?.link?.message ?? '', /0\.0\.0\.0\/0/);
  const peers = execFileSync('ip', ['netns', 'exec', bed.sites.a.gwNs, 'wg', 'show', bed.a.ifname, 'allowed-ips'], { encoding: 'utf8' });
  assert.doesNotMatch(peers, /0\.0\.0\.0\/0/);

  // Teardown leaves nothing behind: namespaces, wireguard-go processes, control sockets, temp dirs.
  await bed.stop();
  assert.deepEqual(listNetns().filter((n) => n.includes(bed.sites.runId)), []);
  for (const g of [bed.a, bed.b]) {
    assert.ok(!existsSync(`/var/run/wireguard/${g.ifname}.sock`), `${g.ifname}.sock left behind`);
    assert.ok(g.proc.exitCode !== null || g.proc.signalCode !== null, `gateway ${g.side} still running`);
  }
  const wgProcs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('wireguard-go') && (l.includes(bed.a.ifname) || l.includes(bed.b.ifname)));
  assert.deepEqual(wgProcs, []);
  assert.ok(!existsSync(bed.dir));
});
