// Storage pre-copy against a real QEMU guest: the guest's disk writer rewrites its disk during
// the asynchronous passes and the synchronous phase (write-blocking mirror through the source
// agent), the link is cut once in each mode, and at cutover the target is byte-identical (SHA-256
// with the guest paused, plus the disk writer's own verification of the target image).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SourceAgent } from '../../src/storage/source.ts';
import { createGuestLab, guestBin } from '../env/qemu.ts';
import { startLink, startTargetProcess, targetChecksum, testCredentials, type Link, type TargetProcess } from './storage-helpers.ts';

const MiB = 1 << 20;
const WRITER_BLOCKS = 4096; // the disk writer rewrites the first 16 MiB, 2 MB/s

function makeDisk(path: string): void {
  const buf = Buffer.alloc(64 * MiB);
  crypto.randomFillSync(buf, 20 * MiB, 8 * MiB);
  for (let off = 32 * MiB; off < 48 * MiB; off += 64) buf.write(`file system block ${off.toString(16)} text `.padEnd(64, '.'), off);
  writeFileSync(path, buf);
}

test('a guest writing during pre-copy ends with a byte-identical target', { timeout: 300_000 }, async () => {
  const lab = createGuestLab('cn-storage-');
  let target: TargetProcess | undefined;
  let link: Link | undefined;
  let agent: SourceAgent | undefined;
  try {
    const disk = join(lab.dir, 'disk.raw');
    makeDisk(disk);
    const guest = await lab.start({ name: 'vm', workload: { name: 'diskwriter', params: { blocks: WRITER_BLOCKS, mbps: 2 } }, disks: [{ path: disk, format: 'raw' }] });
    await guest.serial.waitFor(/DISK READY/, 60_000);
    const volume = join(lab.dir, 'target.raw');
    const creds = testCredentials();
    target = await startTargetProcess(volume, creds.target);
    link = await startLink(target.port, 16 * MiB);
    const t = target;
    agent = new SourceAgent({ targetHost: '127.0.0.1', targetPort: link.port, qmp: guest.qmp, workDir: lab.dir, credentials: creds.source,
      windowBytes: 4 * MiB, convergeBytes: 1 * MiB, reconnectTimeoutMs: 30_000, targetChecksum: () => targetChecksum(t.httpPort, creds.source) });
    const a = agent;
    const synced = agent.start();

    // Asynchronous mode: cut the link once mid-pass.
    const deadline = Date.now() + 60_000;
    while ((await a.status()).bytesSent < 4 * MiB && Date.now() < deadline) await delay(50);
    link.cut(500);
    await synced;
    let s = await agent.status();
    assert.equal(s.mode, 'sync');
    assert.equal(s.synced, true);
    assert.ok(s.passes.length >= 2, `passes: ${JSON.stringify(s.passes)}`);
    assert.ok(s.link.reconnects >= 1);
    assert.equal(s.remainingDirtyBytes, 0);

    // Synchronous mode: the guest keeps writing through the mirror; a short cut stalls writes, then
    // the agent catches up and is synced again.
    await delay(2000);
    link.cut(300);
    await delay(1500);
    const until = Date.now() + 30_000;
    while (!(s = await a.status()).synced && Date.now() < until) await delay(100);
    assert.equal(s.synced, true, `not synced after the cut: ${s.reason} ${s.message}`);
    await delay(1000);

    const v = await agent.verify({ pause: true });
    assert.equal(v.quiesced, true);
    assert.equal(v.sourceSha256, v.targetSha256);
    assert.ok(v.match);
    s = await agent.status();
    assert.equal(s.phase, 'Verified');
    const wl = s.writeLatency;
    assert.ok((wl.syncOps ?? 0) > 0 && (wl.asyncOps ?? 0) > 0, JSON.stringify(wl));
    console.log(JSON.stringify({ passes: s.passes, bytesTotal: s.bytesTotal, bytesSent: s.bytesSent, bytesOverWan: s.bytesOverWan, link: s.link, writeLatency: wl }));
    assert.ok(s.bytesOverWan < s.bytesTotal, `over the WAN ${s.bytesOverWan} of ${s.bytesTotal}`);

    // The target image is a valid disk-writer image in its own right.
    const out = execFileSync(guestBin('diskwriter'), ['--verify', '--dev', volume, '--blocks', String(WRITER_BLOCKS)], { encoding: 'utf8' });
    assert.match(out, /DISK VERIFY ok/);

    // Release takes the mirror out of the guest's write path; the guest keeps running.
    await agent.release();
    const jobs = (await guest.qmp.executeUntyped('query-block-jobs')) as unknown[];
    assert.deepEqual(jobs, []);
    await guest.qmp.executeUntyped('cont');
    const n = guest.serial.heartbeats().length;
    await guest.serial.waitFor(/DISK \d+ blocks=\d+ sum=[0-9a-f]+ ok/, 60_000);
    assert.ok(guest.serial.heartbeats().length > n);
  } finally {
    await agent?.release();
    await link?.close();
    await target?.stop().catch(() => undefined);
    await lab.destroy();
  }
});
