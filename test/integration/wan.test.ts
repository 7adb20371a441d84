// The WAN emulator between two namespace sites: acceptance (100 Mbit/s and 50 ms RTT held within
// 5%), runtime control (cut, restore, loss, jitter without reordering), and cleanup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createSites, pingRtt, sweepStaleControlDirs, type Sites } from '../env/wan.ts';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listNetns, sweepStaleNetns } from '../env/netns.ts';
import { runTransfer, startSink } from '../env/tcp-probe.ts';
import { pidAlive } from '../helpers/exit.ts';
import { waitFor } from '../helpers/poll.ts';

/** TCP payload per 1500-byte IP packet with timestamps: 1500 - 20 (IP) - 32 (TCP + options). */
const TCP_PAYLOAD_SHARE = 1448 / 1500;
const PORT = 5201;

async function destroyAndAssertClean(sites: Sites): Promise<void> {
  await sites.destroy();
  await sites.destroy(); // idempotent
  const left = listNetns().filter((ns) => sites.namespaces.includes(ns));
  assert.deepEqual(left, [], `namespaces left behind: ${left.join(', ')}`);
  assert.equal(pidAlive(sites.wanemPid), false, `wanem (pid ${sites.wanemPid}) still running`);
  assert.equal(existsSync(sites.controlSocket), false, 'wanem control socket left behind');
}

test('WAN emulator holds 100 Mbit/s and 50 ms RTT within 5%', { timeout: 120_000 }, async (t) => {
  const rateBps = 100e6;
  const rttMs = 50;
  const sites = await createSites({ rateBps, delayMs: rttMs / 2 });
  try {
    const ceiling = rateBps * TCP_PAYLOAD_SHARE;
    const sink = await startSink(sites.b.nodeNs, PORT);
    // Two cores are shared with QEMU guests and other suites: a measurement whose endpoints were
    // starved is repeated once (both are reported); the emulator itself runs at nice -10.
    let line = '';
    let ok = false;
    for (let attempt = 1; attempt <= 2 && !ok; attempt++) {
      const ping = await pingRtt(sites.a.nodeNs, sites.b.nodeIp, 10);
      const r = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, 30e6, { rttSamples: 5 });
      line =
        `configured ${rateBps / 1e6} Mbit/s, RTT ${rttMs} ms | achieved TCP goodput ${(r.steadyBps / 1e6).toFixed(2)} Mbit/s ` +
        `steady (ceiling ${(ceiling / 1e6).toFixed(2)}, wire ≈ ${(r.steadyBps / TCP_PAYLOAD_SHARE / 1e6).toFixed(2)}), ` +
        `${(r.goodputBps / 1e6).toFixed(2)} Mbit/s incl. slow start; RTT median ${ping.medianMs.toFixed(2)} ms (ping), ` +
        `${r.rttMedianMs.toFixed(2)} ms (TCP connect) [attempt ${attempt}]`;
      t.diagnostic(line);
      console.log(`wan self-test: ${line}`);
      assert.ok(ping.minMs >= rttMs, `a packet beat the configured delay: ${ping.minMs} ms`);
      // The TCP connect timer runs in userspace and so also counts scheduling delays; looser bound.
      assert.ok(r.rttMedianMs >= rttMs && r.rttMedianMs < rttMs * 1.25, `TCP connect RTT ${r.rttMedianMs} ms`);
      ok = Math.abs(r.steadyBps - ceiling) / ceiling <= 0.05 && Math.abs(ping.medianMs - rttMs) / rttMs <= 0.05;
    }
    await sink.stop();
    assert.ok(ok, `throughput or RTT off by more than 5%: ${line}`);
    const st = await sites.stats();
    assert.equal(st.ab.reordered, 0);
  } finally {
    await destroyAndAssertClean(sites);
  }
});

test('link can be cut and restored at runtime; loss and jitter behave', { timeout: 120_000 }, async () => {
  const sites = await createSites({ delayMs: 5 });
  try {
    const sink = await startSink(sites.b.nodeNs, PORT, { hash: true });

    await sites.setLink({ down: true });
    const before = await sites.stats();
    await assert.rejects(runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, 1000, { rttSamples: 0, timeoutMs: 1500 }));
    const during = await sites.stats();
    assert.ok(during.ab.dropDown > before.ab.dropDown, 'cut link dropped nothing');
    assert.equal(during.ab.txPackets, before.ab.txPackets, 'a cut link delivered packets');

    await sites.setLink({ down: false });
    const ok = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, 1e6, { rttSamples: 1, hash: true });
    assert.equal(ok.sha256Match, true);

    // 1% loss each way and ±4 ms jitter on 10 ms: TCP still delivers every byte intact, the
    // emulator counted its drops, and nothing was reordered (jitter alone must not reorder).
    await sites.setLink({ loss: 0.01, delayMs: 10, jitterMs: 4 });
    const lossy = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, 5e6, { rttSamples: 9, hash: true });
    assert.equal(lossy.sha256Match, true);
    const st = await sites.stats();
    assert.ok(st.ab.dropLoss > 0, 'loss=0.01 dropped nothing');
    assert.equal(st.ab.reordered + st.ba.reordered, 0, 'jitter reordered packets without reorder=1');
    const spread = Math.max(...lossy.rttMs) - Math.min(...lossy.rttMs);
    assert.ok(lossy.rttMedianMs >= 15 && lossy.rttMedianMs <= 30, `RTT median ${lossy.rttMedianMs} outside 20±8 ms`);
    assert.ok(spread > 0.5, `jitter produced no RTT spread (${spread} ms)`);

    // Asymmetric: only A→B gets a rate; the other direction stays unlimited.
    await sites.setLink({ loss: 0, jitterMs: 0, delayMs: 1 });
    await sites.setLink({ rateBps: 20e6 }, 'ab');
    const slow = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, PORT, 4e6, { rttSamples: 1 });
    assert.ok(slow.steadyBps < 20e6 * 1.02 && slow.steadyBps > 20e6 * 0.85, `A→B at 20 Mbit/s ran at ${slow.steadyBps / 1e6}`);
    await sink.stop();
  } finally {
    await destroyAndAssertClean(sites);
  }
});

test('parallel topologies do not collide; offload toggling mid-transfer keeps data intact', { timeout: 60_000 }, async () => {
  const link = { rateBps: 200e6, delayMs: 1 };
  const [x, y] = await Promise.all([createSites(link), createSites(link)]);
  try {
    assert.notEqual(x.a.nodeNs, y.a.nodeNs);
    for (const s of [x, y]) {
      // Rate-limited links see real packets; unlimited lossless ones forward segmentation-offload
      // super-packets. Lifting the limit briefly mid-transfer switches offload on and off under
      // live traffic, and every byte must still arrive intact.
      const sink = await startSink(s.b.nodeNs, PORT, { hash: true, progressMs: 20 });
      const transfer = runTransfer(s.a.nodeNs, s.b.nodeIp, PORT, 60e6, { rttSamples: 1, hash: true });
      transfer.catch(() => undefined);
      while (sink.progressBytes() < 5e6) await new Promise((r) => setTimeout(r, 10));
      const before = await s.stats();
      await s.setLink({ rateBps: 0 });
      await new Promise((r) => setTimeout(r, 30));
      await s.setLink({ rateBps: 200e6 });
      const during = await s.stats();
      const r = await transfer;
      assert.equal(r.bytes, 60e6);
      assert.equal(r.sha256Match, true);
      const avg = (during.ab.rxBytes - before.ab.rxBytes) / (during.ab.rxPackets - before.ab.rxPackets);
      assert.ok(avg > 1500, `no super-packets while unlimited (average ${avg.toFixed(0)} B)`);
      await sink.stop();
    }
  } finally {
    await destroyAndAssertClean(x);
    await destroyAndAssertClean(y);
  }
});

interface OwnerInfo {
  namespaces: string[];
  wanemPid: number;
  controlSocketDir: string;
}

/** Starts a separate test process that builds sites and then either exits without destroy() or waits to be killed. */
function crashingOwner(mode: 'exit' | 'kill') {
  const wanTs = fileURLToPath(new URL('../env/wan.ts', import.meta.url));
  const code =
    `const { createSites } = await import(${JSON.stringify(wanTs)});` +
    `const s = await createSites({ delayMs: 1 });` +
    `console.log(JSON.stringify({ namespaces: s.namespaces, wanemPid: s.wanemPid, controlSocketDir: s.controlSocket.replace(/\\/[^/]*$/, '') }));` +
    `if (process.env.MODE === 'exit') process.exit(3); else setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const info = new Promise<OwnerInfo>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out) as OwnerInfo);
    });
    child.once('exit', (c) => reject(new Error(`owner exited (${c}) before reporting`)));
  });
  return { child, exited, info };
}

const gone = (pid: number, what: string) => waitFor(() => !pidAlive(pid), { what, timeoutMs: 2000, intervalMs: 20 });

test('a test process that exits without destroy() or is SIGKILLed leaves nothing behind', { timeout: 60_000 }, async () => {
  const exiting = crashingOwner('exit');
  const a = await exiting.info;
  await exiting.exited;
  assert.equal(existsSync(a.controlSocketDir), false, 'exit hook left the control dir');
  assert.deepEqual(listNetns().filter((ns) => a.namespaces.includes(ns)), [], 'exit hook left namespaces');
  await gone(a.wanemPid, 'the exit hook to stop wanem');

  const killed = crashingOwner('kill');
  const b = await killed.info;
  killed.child.kill('SIGKILL');
  await killed.exited;
  // wanem follows its parent (PR_SET_PDEATHSIG); the namespaces wait for the next sweep.
  await gone(b.wanemPid, 'wanem to die with its SIGKILLed owner');
  const swept = sweepStaleNetns(); // may also sweep leftovers of other dead runs
  for (const ns of b.namespaces) assert.ok(swept.includes(ns), `${ns} not swept`);
  assert.ok(existsSync(b.controlSocketDir), 'expected the killed owner to leave its control dir');
  sweepStaleControlDirs();
  assert.equal(existsSync(b.controlSocketDir), false, 'stale control dir not swept');
  assert.deepEqual(listNetns().filter((ns) => b.namespaces.includes(ns)), []);
});
