// Faults of the storage pre-copy, on a static disk (hash-scan change source, no QEMU): a cut link
// and a SIGKILLed target agent mid-pass resume from what the target holds (bytes re-sent ≪ disk),
// and a failing target write fails the step cleanly while the source disk stays untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SourceAgent, type SourceAgentOptions } from '../../src/storage/source.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { onExit } from '../helpers/exit.ts';
import { startLink, startTargetProcess, targetChecksum, testCredentials, type Link, type TargetProcess } from './storage-helpers.ts';
import { waitFor } from '../helpers/poll.ts';

const MiB = 1 << 20;

/** A 64 MiB disk: text-like and random data with zero holes (like a used file system). */
function makeDisk(path: string): void {
  const buf = Buffer.alloc(64 * MiB);
  const words = ['kernel', 'module', 'config', 'cloudnet', 'storage', 'replica', 'block', 'page', '\n'];
  for (let mb = 0; mb < 64; mb++) {
    if (mb % 8 === 7) continue; // holes
    const off = mb * MiB;
    if (mb % 3 === 0) crypto.randomFillSync(buf, off, MiB);
    else for (let i = 0; i < MiB; ) { const w = words[(i * 7 + mb) % words.length] + ' '; buf.write(w, off + i); i += w.length; }
  }
  writeFileSync(path, buf);
}

/** A fresh disk in `dir`, its hash before anything touches it, and where the target volume goes. */
async function prepareDisk(dir: string): Promise<{ disk: string; before: string; volume: string }> {
  const disk = join(dir, 'disk.raw');
  makeDisk(disk);
  return { disk, before: await sha256File(disk), volume: join(dir, 'target.raw') };
}

interface LinkedAgent {
  dir: string;
  disk: string;
  before: string;
  volume: string;
  creds: ReturnType<typeof testCredentials>;
  /** Replaced when a test restarts the target on the same ports. */
  target: TargetProcess;
  link: Link;
  agent: SourceAgent;
}

/** A fresh disk, a target agent process, a faultable link to it (12 MiB/s) and a source agent copying over it (2 MiB window). */
async function withLinkedAgent(prefix: string, agentOptions: Partial<SourceAgentOptions>, body: (c: LinkedAgent) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const c: Partial<LinkedAgent> = { dir };
  try {
    Object.assign(c, await prepareDisk(dir));
    const creds = testCredentials();
    c.creds = creds;
    c.target = await startTargetProcess(c.volume!, creds.target);
    c.link = await startLink(c.target.port, 12 * MiB); // a pass takes a few seconds
    c.agent = new SourceAgent({
      diskPath: c.disk!, targetHost: '127.0.0.1', targetPort: c.link.port, workDir: dir, codec: 'none', credentials: creds.source,
      windowBytes: 2 * MiB, reconnectTimeoutMs: 30_000, targetChecksum: () => targetChecksum(c.target!.httpPort, creds.source), ...agentOptions,
    });
    await body(c as LinkedAgent);
  } finally {
    await c.agent?.release();
    await c.link?.close();
    await c.target?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

test('a cut link and a killed target agent mid-pass resume without starting over', { timeout: 180_000 }, () => withLinkedAgent('cn-storage-resume-', {}, async (c) => {
  const a = c.agent;
  const done = a.start();
  const progressed = (frac: number) => async () => (await a.status()).bytesSent > frac * 56 * MiB;

  await waitFor(progressed(0.25), { what: '25% copied', timeoutMs: 60_000 });
  c.link.cut(1000);
  await waitFor(async () => (await a.status()).link.reconnects >= 1, { what: 'reconnect after the cut', timeoutMs: 20_000 });

  await waitFor(progressed(0.6), { what: '60% copied', timeoutMs: 60_000 });
  const { port, httpPort } = c.target;
  await c.target.kill();
  await delay(500);
  c.target = await startTargetProcess(c.volume, c.creds.target, { port, httpPort });
  await waitFor(async () => (await a.status()).link.reconnects >= 2, { what: 'reconnect to the restarted target', timeoutMs: 20_000 });

  await done;
  const s = await a.status();
  assert.equal(s.phase, 'Converged');
  const v = await a.verify();
  assert.ok(v.match, `checksums differ: ${JSON.stringify(v)}`);
  assert.equal(await sha256File(c.disk), c.before, 'the source disk was modified');
  // 56 MiB of non-zero data; each fault may cost about the window (2 MiB) plus what the proxy buffered.
  assert.ok(s.link.resentBytes <= 6 * MiB, `re-sent ${s.link.resentBytes} bytes`);
  assert.ok(s.bytesSent <= 56 * MiB + 8 * MiB, `sent ${s.bytesSent} bytes for 56 MiB of data`);
  assert.ok(c.link.bytesForward < 64 * MiB + 8 * MiB, `link carried ${c.link.bytesForward} bytes`);
  console.log(JSON.stringify({ resentBytes: s.link.resentBytes, skipped: s.link.resumeSkippedBytes, sent: s.bytesSent, linkBytes: c.link.bytesForward, passes: s.passes }));
}));

test('a WAN outage that TCP does not notice: the agent drops the stalled connection and resumes', { timeout: 120_000 }, () => withLinkedAgent('cn-storage-stall-', { stallTimeoutMs: 2000 }, async (c) => {
  const a = c.agent;
  const done = a.start();
  await waitFor(async () => (await a.status()).bytesSent > 16 * MiB, { what: '16 MiB copied', timeoutMs: 60_000 });
  c.link.blackhole(5000);
  await waitFor(async () => (await a.status()).link.reconnects >= 1, { what: 'a new connection after the stall', timeoutMs: 20_000 });
  await done;
  const s = await a.status();
  assert.ok((await a.verify()).match);
  assert.ok(s.link.resentBytes <= 6 * MiB, `re-sent ${s.link.resentBytes} bytes`);
}));

test('a failing target write fails the step cleanly and leaves the source disk untouched', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-storage-fail-'));
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  let target: TargetProcess | undefined;
  let agent: SourceAgent | undefined;
  try {
    const { disk, before, volume } = await prepareDisk(dir);
    // A sparse volume of the right size, but the agent may not write beyond 16 MiB into it.
    writeFileSync(volume, Buffer.alloc(0));
    truncateSync(volume, 64 * MiB);
    const creds = testCredentials();
    target = await startTargetProcess(volume, creds.target, { fsizeLimit: 16 * MiB });
    agent = new SourceAgent({ diskPath: disk, targetHost: '127.0.0.1', targetPort: target.port, workDir: dir, reconnectTimeoutMs: 5000, credentials: creds.source });
    await assert.rejects(agent.start(), /target write failed/);
    const s = await agent.status();
    assert.equal(s.phase, 'Failed');
    assert.equal(s.reason, 'TargetWriteFailed');
    assert.equal(s.synced, false);
    assert.equal(await sha256File(disk), before, 'the source disk was modified');
  } finally {
    await agent?.release();
    await target?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
});
