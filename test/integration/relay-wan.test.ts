// Acceptance over the emulated WAN: a real QEMU (TCG) live migration from site A's node namespace
// to site B's, through `cloudnet relay send` (in A) and `cloudnet relay receive` (in B) over mutual
// TLS across the WAN emulator (100 Mbit/s, 20 ms RTT). The migration completes, the guest keeps
// running, and the SHA-256 of the stream entering the sender relay equals that of the stream
// leaving the receiver relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { formatMigration, migrate } from '../../src/qemu/migrate.ts';
import { createGuestLab } from '../env/qemu.ts';
import { createSites } from '../env/wan.ts';
import { CLI, NODE, waitForLog } from '../env/relay-cli.ts';
import { makePki } from './relay-helpers.ts';
import { waitFor } from '../helpers/poll.ts';


function finished(file: string, ms: number): Promise<Record<string, unknown>> {
  return waitFor(() => {
    if (!fs.existsSync(file)) return undefined;
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { finished: Record<string, unknown>[] }).finished[0];
  }, { what: `a finished session in ${file}`, timeoutMs: ms, intervalMs: 250 });
}

test('QEMU migration across the emulated WAN through the relay pair', { timeout: 300_000 }, async (t) => {
  const sites = await createSites({ rateBps: 100e6, delayMs: 10 });
  const lab = createGuestLab('cloudnet-relay-wan-');
  const pki = makePki();
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await lab.destroy();
    await sites.destroy();
    pki.cleanup();
  });
  const workload = { name: 'memwriter' as const, params: { 'wss-mb': 16, 'dirty-mbps': 2, mix: 'zero:20,dup:20,random:20,text:40' } };
  const src = await lab.start({ name: 'wan-src', workload, memoryMiB: 192, netns: sites.a.nodeNs });
  await src.serial.waitFor(/MW READY/, 60_000);
  const dst = await lab.start({ name: 'wan-dst', workload, memoryMiB: 192, netns: sites.b.nodeNs, incoming: true });

  const env = { ...process.env, LOG_LEVEL: 'info' };
  const recvStats = path.join(lab.dir, 'receive.json');
  const sendStats = path.join(lab.dir, 'send.json');
  const receiver = sites.spawn(sites.b.nodeNs, NODE, [CLI, 'relay', 'receive', '--listen', `${sites.b.nodeIp}:7400`, '--target', 'mem=127.0.0.1:49152',
    '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey, '--cache-mb', '128', '--hash-streams', '--stats-file', recvStats], { env });
  procs.push(receiver);
  await waitForLog(receiver, /relay receiver ready/, 20_000);
  const sender = sites.spawn(sites.a.nodeNs, NODE, [CLI, 'relay', 'send', '--listen', '127.0.0.1:49152/mem', '--peer', `${sites.b.nodeIp}:7400`,
    '--servername', 'localhost', '--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--cache-mb', '128', '--hash-streams',
    ...(process.env.RELAY_WINDOW_MB ? ['--window-mb', process.env.RELAY_WINDOW_MB] : []),
    '--stats-file', sendStats], { env });
  procs.push(sender);
  await waitForLog(sender, /relay sender ready/, 20_000);

  const before = await sites.stats();
  const result = await migrate({
    source: src.qmp, destination: dst.qmp, incomingUri: 'tcp:127.0.0.1:49152', uri: 'tcp:127.0.0.1:49152',
    parameters: { 'max-bandwidth': 1024 * 1024 * 1024, 'downtime-limit': 300 },
    timeoutMs: 120_000,
  });
  const after = await sites.stats();
  const wan = after.ab.txBytes - before.ab.txBytes;
  console.log(`[relay-wan] ${formatMigration(result, wan)}`);
  assert.equal(result.status, 'completed', result.error);
  assert.equal(result.destinationStatus, 'running');
  const from = dst.serial.count;
  await dst.serial.waitFor(/HB \d+/, 15_000, from);
  await dst.serial.waitFor(/HB \d+/, 15_000, dst.serial.count);

  const s = await finished(sendStats, 15_000) as { inputSha256: string; bytesIn: number; wireBytes: number; mode: string; syncLost?: string; rounds: unknown[] };
  const r = await finished(recvStats, 15_000) as { outputSha256: string; bytesOut: number };
  console.log(`[relay-wan] stream ${s.bytesIn} B, relay link ${s.wireBytes} B (${(100 * s.wireBytes / s.bytesIn).toFixed(1)}%), WAN ${wan} B, ` +
    `QEMU ram.transferred ${result.ramTransferredBytes} B, rounds seen ${s.rounds.length}, mode ${s.mode}`);
  assert.ok(s.inputSha256 && s.inputSha256.length === 64);
  assert.equal(r.outputSha256, s.inputSha256, 'stream out of the receiver relay = stream into the sender relay');
  assert.equal(r.bytesOut, s.bytesIn);
  assert.equal(s.mode, 'qevm');
  // The sender probed its link when it came up: the round trip includes the emulated 2 × 10 ms.
  const probe = (JSON.parse(fs.readFileSync(sendStats, 'utf8')) as { link?: { probe?: { rttMs: number; bytesPerSec: number; probeBytes: number } } }).link?.probe;
  assert.ok(probe && probe.rttMs >= 19 && probe.bytesPerSec > 0 && probe.probeBytes >= 1 << 20, `link probe in the stats: ${JSON.stringify(probe)}`);
  assert.ok(wan < s.bytesIn * 0.8, `WAN carried ${wan} B for a ${s.bytesIn} B stream`);

  // For comparison, the same guest straight back over the same (symmetric) WAN without the relay.
  const back = await lab.start({ name: 'wan-back', workload, memoryMiB: 192, netns: sites.a.nodeNs, incoming: true });
  const b0 = await sites.stats();
  const plain = await migrate({
    source: dst.qmp, destination: back.qmp, incomingUri: 'tcp:0.0.0.0:49153', uri: `tcp:${sites.a.nodeIp}:49153`,
    parameters: { 'max-bandwidth': 1024 * 1024 * 1024, 'downtime-limit': 300 },
    timeoutMs: 120_000,
  });
  const b1 = await sites.stats();
  console.log(`[relay-wan] plain, no relay: ${formatMigration(plain, b1.ba.txBytes - b0.ba.txBytes)}`);
  assert.equal(plain.status, 'completed', plain.error);
});
