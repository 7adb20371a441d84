// Real QEMU (TCG) live migrations of dirtying guests: over loopback TCP with a shared disk and a
// real application, and across the emulated WAN between the node namespaces of two sites.
// Checks completion, that the guest keeps running on the destination (serial heartbeats continue,
// counter never goes backwards), that the application's results are still correct, and prints
// bytes, times and rounds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readFileSync, statSync } from 'node:fs';
import { formatMigration, migrate, migrateToFile } from '../../src/qemu/migrate.ts';
import { startStreamTee } from '../../src/qemu/stream-tee.ts';
import { freePort } from '../helpers/ports.ts';
import { createGuestLab, guestBin, liveMigrate, type LiveMigrationReport } from '../env/qemu.ts';
import { createSites } from '../env/wan.ts';

const MIX = 'zero:20,dup:20,random:20,text:40';

function report(label: string, r: LiveMigrationReport, wireBytes?: number): void {
  console.log(`[qemu-migration] ${label}: boot=${r.sourceBootMs.toFixed(0)} ms ${formatMigration(r.result, wireBytes)} ` +
    `heartbeat-pause=${r.heartbeatPauseMs.toFixed(0)} ms dst-heartbeats=${r.destinationHeartbeats.length}`);
}

function assertKeptRunning(r: LiveMigrationReport): void {
  assert.equal(r.result.status, 'completed', r.result.error);
  assert.equal(r.result.destinationStatus, 'running');
  assert.ok(r.result.rounds >= 2, `expected several pre-copy rounds, got ${r.result.rounds}`);
  assert.ok(r.heartbeatsMonotonic, 'heartbeat counter went backwards');
  assert.ok(r.destinationHeartbeats.length >= 5, `destination printed only ${r.destinationHeartbeats.length} heartbeats`);
  const last = r.lastSourceHeartbeat;
  assert.ok(last, 'source printed no heartbeat');
  // A heartbeat line cut in half by the switchover is lost, so allow one missing beat.
  assert.ok(r.destinationHeartbeats[0].n - last.n <= 2, `heartbeats skipped: ${last.n} -> ${r.destinationHeartbeats[0].n}`);
}

describe('QEMU live migration', { timeout: 180_000 }, () => {
  const lab = createGuestLab();
  after(() => lab.destroy());

  test('loopback: memwriter + sqlite + disk writer on a shared disk keep running and stay correct', async () => {
    const disk = join(lab.dir, 'disk.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '16M']);
    const blocks = 1024;
    const r = await liveMigrate(lab, {
      name: 'lo',
      memoryMiB: 256,
      workload: {
        name: ['memwriter', 'sqlload', 'diskwriter'],
        params: { 'wss-mb': 32, 'dirty-mbps': 8, mix: MIX, blocks, mbps: 1, 'check-every': 5 },
      },
      disks: [{ path: disk, format: 'raw' }],
      ready: /MW READY/,
      warmupMs: 1000,
      // Bandwidth capped so that the dirtying guest needs several rounds even on loopback.
      parameters: { 'max-bandwidth': 48 * 1024 * 1024, 'downtime-limit': 300 },
    });
    report('loopback', r, r.wireBytes);
    assertKeptRunning(r);

    // sqlite: the next checkpoint printed by the destination matches a host run of the same binary.
    const from = r.destination.serial.count;
    const { match } = await r.destination.serial.waitFor(/SQL (?:DONE )?(\d+) rows=(\d+) sum=([0-9a-f]+)/, 30_000, from);
    const expected = execFileSync(guestBin('sqlload'), ['--db', ':memory:', '--batches', match[1], '--pause-ms', '0', '--check-every', '5'], { encoding: 'utf8' });
    assert.match(expected, new RegExp(`SQL DONE ${match[1]} rows=${match[2]} sum=${match[3]}`));

    // disk: the destination completes a verified pass, then the image on the host is consistent.
    const disk1 = await r.destination.serial.waitFor(/DISK (\d+) blocks=\d+ sum=([0-9a-f]+) (\S+)/, 30_000, from);
    assert.equal(disk1.match[3], 'ok');
    await r.destination.stop();
    const verify = execFileSync(guestBin('diskwriter'), ['--verify', '--dev', disk, '--blocks', String(blocks)], { encoding: 'utf8' });
    assert.match(verify, /DISK VERIFY ok gen=\d+/);
  });

  test('across the emulated WAN (100 Mbit/s, 20 ms RTT) between two node namespaces', async (t) => {
    const sites = await createSites({ rateBps: 100e6, delayMs: 10 });
    t.after(() => sites.destroy());
    const before = await sites.stats();
    const r = await liveMigrate(lab, {
      name: 'wan',
      memoryMiB: 192,
      workload: { name: 'memwriter', params: { 'wss-mb': 16, 'dirty-mbps': 2, mix: MIX } },
      ready: /MW READY/,
      sourceNetns: sites.a.nodeNs,
      destinationNetns: sites.b.nodeNs,
      connectHost: sites.b.nodeIp,
      // The WAN, not QEMU's 128 MiB/s default throttle, must be the bottleneck.
      parameters: { 'max-bandwidth': 1024 * 1024 * 1024, 'downtime-limit': 300 },
      timeoutMs: 60_000,
    });
    const after = await sites.stats();
    const wire = after.ab.txBytes - before.ab.txBytes;
    report('wan', r, wire);
    assertKeptRunning(r);
    assert.ok(wire >= r.result.ramTransferredBytes * 0.9, `WAN carried ${wire} B, QEMU sent ${r.result.ramTransferredBytes} B of RAM`);
    await r.source.stop();
    await r.destination.stop();
  });

  test('records a stream through the tee on its way to a live destination, and into a file via exec:', async () => {
    const workload = { name: 'idle' as const };
    const src = await lab.start({ name: 'rec-src', workload, memoryMiB: 128 });
    const dst = await lab.start({ name: 'rec-dst', workload, memoryMiB: 128, incoming: true });
    const port = await freePort();
    await dst.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    const recording = join(lab.dir, 'idle.qemu');
    const tee = await startStreamTee({ targetHost: '127.0.0.1', targetPort: port, recordPath: recording });
    const resumed = dst.qmp.waitForEvent('RESUME', 60_000); // QMP event stream: the destination starts the guest
    resumed.catch(() => undefined); // awaited below; do not let an early failure leave it unhandled
    try {
      const r = await migrate({ source: src.qmp, uri: `tcp:127.0.0.1:${tee.port}`, parameters: { 'max-bandwidth': 1024 * 1024 * 1024 } });
      assert.equal(r.status, 'completed', r.error);
      await resumed;
      await dst.serial.waitFor(/HB \d+/, 10_000, dst.serial.count);
      await src.stop();
      await tee.drained();
    } finally {
      await tee.close();
    }
    const head = readFileSync(recording).subarray(0, 8);
    assert.equal(head.toString('hex'), '5145564d00000003', 'stream starts with QEVM v3');
    assert.equal(statSync(recording).size, tee.forwarded.toDestination);
    assert.ok(tee.forwarded.toDestination > 1e6);

    // The destination (now the running guest) saved to a file: the source-less recording mode.
    const file = join(lab.dir, 'idle-exec.qemu');
    const f = await migrateToFile(dst.qmp, file);
    console.log(`[qemu-migration] recorded: tee=${(tee.forwarded.toDestination / 1e6).toFixed(1)} MB exec-file=${(f.fileBytes / 1e6).toFixed(1)} MB`);
    assert.equal(f.status, 'completed', f.error);
    assert.equal(readFileSync(file).subarray(0, 4).toString(), 'QEVM');
    assert.equal((await dst.qmp.execute('query-status')).status, 'postmigrate');
    await dst.stop();
  });
});
