// The seeded final mirror (issue 13): after the pre-copy, the target agent hands what the volume
// holds to the receiver relay's seed intake, and KubeVirt's final disk mirror, a full NBD copy of the
// disk (here `qemu-img convert` into `qemu-nbd` serving the target volume, through the relay's NBD
// listener), then crosses the WAN mostly as references. Measured against the same mirror through an
// unseeded relay pair. Real parts: the agent processes, the relay pair, qemu-img and qemu-nbd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { ReceiverRelay, SenderRelay, startSeedIntake, type SeedIntake } from '../../src/relay/transport/index.ts';
import { freePort } from '../helpers/ports.ts';
import { callAgent } from '../../src/storage/http.ts';
import type { SourceStatus } from '../../src/storage/status.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { onExit } from '../helpers/exit.ts';
import { requireTool } from '../env/netns.ts';
import { startTargetProcess, testCredentials, writeCredentials } from './storage-helpers.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);
const MiB = 1 << 20;
const DISK = 48 * MiB;

/** A used disk: random, text-like and repeated blocks, and a zero tail. */
function diskImage(): Buffer {
  const b = Buffer.alloc(DISK);
  crypto.randomFillSync(b, 0, 16 * MiB);
  for (let off = 16 * MiB; off < 32 * MiB; off += 64) b.write(`block ${(off / 4096) | 0} of a file system, some text `.padEnd(64, '.'), off);
  return b;
}

interface Pair { sender: SenderRelay; receiver: ReceiverRelay; intake?: SeedIntake; nbdPort: number; stop(): Promise<void> }

/** A relay pair on loopback: the sender's NBD listener forwards to `targetPort` (qemu-nbd). */
async function relayPair(targetPort: number, seedBytes: number): Promise<Pair> {
  const receiver = new ReceiverRelay({
    listen: { host: '127.0.0.1', port: 0 }, targets: { disk: { host: '127.0.0.1', port: targetPort } },
    security: { kind: 'plain-inside-wireguard' }, cacheBytes: 64 * MiB, seedBytes,
  });
  const r = await receiver.start();
  const intake = seedBytes ? await startSeedIntake({ host: '127.0.0.1', port: 0 }, receiver) : undefined;
  const sender = new SenderRelay({
    listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 'disk', mode: 'nbd' }], peer: { host: '127.0.0.1', port: r.port },
    security: { kind: 'plain-inside-wireguard' }, cacheBytes: 64 * MiB,
  });
  const [addr] = await sender.start();
  await sender.connect();
  return {
    sender, receiver, intake, nbdPort: addr.port,
    async stop() { await sender.stop(); await intake?.close(); await receiver.stop(); },
  };
}

function qemuNbd(volume: string, port: number): ChildProcess {
  return spawn('qemu-nbd', ['-f', 'raw', '-x', 'disk', '-b', '127.0.0.1', '-p', String(port), '-t', '--cache=none', '--aio=threads', volume], { stdio: 'ignore' });
}

/** KubeVirt's final mirror, as far as the wire sees it: every block of the disk written over NBD. */
async function finalMirror(disk: string, pair: Pair): Promise<number> {
  const before = sessionWire(pair);
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', disk, `nbd://127.0.0.1:${pair.nbdPort}/disk`], { timeout: 120_000 });
  for (let i = 0; i < 100 && sessions(pair).live.some((s) => s.state === 'open'); i++) await delay(50);
  return sessionWire(pair) - before;
}

type SessionJson = { state?: string; wireBytes?: number };
function sessions(pair: Pair): { live: SessionJson[]; finished: SessionJson[] } {
  const st = pair.sender.stats() as { sessions?: SessionJson[]; finished?: SessionJson[] };
  return { live: st.sessions ?? [], finished: st.finished ?? [] };
}

/** WAN bytes of every session the sender carried so far. */
function sessionWire(pair: Pair): number {
  const s = sessions(pair);
  return [...s.live, ...s.finished].reduce((n, x) => n + (x.wireBytes ?? 0), 0);
}

test('a pre-copied volume seeds the receiver relay: the final NBD mirror crosses as references', { timeout: 240_000 }, async () => {
  requireTool('qemu-img', 'qemu-utils');
  requireTool('qemu-nbd', 'qemu-utils');
  const dir = mkdtempSync(join(tmpdir(), 'cn-seeded-mirror-'));
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const procs: ChildProcess[] = [];
  const pairs: Pair[] = [];
  try {
    const disk = join(dir, 'disk.raw');
    writeFileSync(disk, diskImage());
    const volume = join(dir, 'target.raw');
    const nbdPort = await freePort();
    const seeded = await relayPair(nbdPort, 64 * MiB);
    pairs.push(seeded);

    // Pre-copy with the agents as the operator runs them; the target seeds the relay when done.
    const creds = testCredentials();
    const target = await startTargetProcess(volume, creds.target, { seedRelay: `127.0.0.1:${seeded.intake!.port}` });
    const targetExited = new Promise<number | null>((r) => target.child.once('exit', (c) => r(c)));
    const httpPort = await freePort();
    const source = spawn('setpriv', ['--pdeathsig', 'KILL', join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'src/cli.ts'), 'agent', 'source',
      '--disk', disk, '--target', `127.0.0.1:${target.port}`, '--target-http', `https://127.0.0.1:${target.httpPort}`, '--http', `127.0.0.1:${httpPort}`,
      '--work-dir', dir, '--credentials', writeCredentials(join(dir, 'src-creds'), creds.source)], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'warn' } });
    procs.push(source);
    const base = `https://127.0.0.1:${httpPort}`;
    let st: SourceStatus | undefined;
    for (let i = 0; i < 600; i++) {
      try { st = JSON.parse((await callAgent(creds.operator, 'source', base, '/status')).toString()) as SourceStatus; } catch { /* starting */ }
      if (st?.phase === 'Converged') break;
      await delay(100);
    }
    assert.equal(st?.phase, 'Converged');
    const precopyWan = st!.bytesOverWan;
    await callAgent(creds.operator, 'source', base, '/release', { method: 'POST' });
    assert.equal(await targetExited, 0);
    const seeds = seeded.sender.stats().remoteSeeds as number;
    assert.ok(seeds > 5000, `the relay holds ${seeds} seeded pages`);

    // KubeVirt's final mirror into the pre-copied volume, through the seeded pair.
    const nbd = qemuNbd(volume, nbdPort);
    procs.push(nbd);
    await delay(500);
    const seededWire = await finalMirror(disk, seeded);
    nbd.kill();
    assert.equal(await sha256File(volume), await sha256File(disk), 'the mirrored target differs from the source');

    // The same mirror without pre-copy: a blank volume, an unseeded pair.
    const blank = join(dir, 'blank.raw');
    writeFileSync(blank, Buffer.alloc(0));
    truncateSync(blank, DISK);
    const nbdPort2 = await freePort();
    const plain = await relayPair(nbdPort2, 0);
    pairs.push(plain);
    const nbd2 = qemuNbd(blank, nbdPort2);
    procs.push(nbd2);
    await delay(500);
    const plainWire = await finalMirror(disk, plain);
    nbd2.kill();
    assert.equal(await sha256File(blank), await sha256File(disk));

    console.log(`[seeded-mirror] ${DISK / MiB} MiB disk: pre-copy ${precopyWan} B over the WAN; final mirror ${seededWire} B seeded vs ${plainWire} B unseeded (${(100 * seededWire / DISK).toFixed(2)}% vs ${(100 * plainWire / DISK).toFixed(1)}% of the disk)`);
    assert.ok(seededWire <= 0.05 * DISK, `the seeded final mirror sent ${seededWire} B, more than 5% of ${DISK}`);
    assert.ok(seededWire < plainWire / 4, `seeded ${seededWire} B vs unseeded ${plainWire} B`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    for (const p of pairs) await p.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
});
