// The agents as the operator would run them: `cloudnet agent target` and `cloudnet agent source`
// as processes with their HTTP APIs, observed through the controller's StoragePreCopy provider.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { StorageRequest } from '../../src/api/ports.ts';
import { freePort } from '../helpers/ports.ts';
import { AgentStoragePreCopy, AGENT_ANNOTATION, agentsFromAnnotation } from '../../src/storage/provider.ts';
import type { SourceStatus, Verification } from '../../src/storage/status.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { onExit } from '../helpers/exit.ts';
import { startTargetProcess } from './storage-helpers.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('cloudnet agent source|target over HTTP, observed by the StoragePreCopy provider', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-storage-cli-'));
  const unregisterDir = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const target = await startTargetProcess(join(dir, 'target.raw'));
  const httpPort = await freePort();
  const disk = join(dir, 'disk.raw');
  const data = Buffer.alloc(16 << 20);
  crypto.randomFillSync(data, 0, 4 << 20);
  data.fill('a text-like region of a disk image ', 8 << 20, 12 << 20);
  writeFileSync(disk, data);
  const source = spawn('setpriv', ['--pdeathsig', 'KILL', join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'src/cli.ts'), 'agent', 'source',
    '--disk', disk, '--target', `127.0.0.1:${target.port}`, '--target-http', `http://127.0.0.1:${target.httpPort}`,
    '--http', `127.0.0.1:${httpPort}`, '--work-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  const unregister = onExit(() => source.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => source.once('exit', (code) => r(code)));
  let stdout = '';
  source.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  try {
    const url = `http://127.0.0.1:${httpPort}`;
    const req = { migration: { metadata: { name: 'wm', annotations: { [AGENT_ANNOTATION]: `${url}/` } } } } as unknown as StorageRequest;
    assert.deepEqual(agentsFromAnnotation(req), [url]);
    const provider = new AgentStoragePreCopy();
    const signal = AbortSignal.timeout(60_000);
    let report = await provider.sync(req, signal);
    for (let i = 0; i < 400 && report.reason !== 'NoSynchronousMode'; i++) {
      await delay(100);
      report = await provider.sync(req, signal);
    }
    // Without QEMU there is no synchronous mode: converged, but never claimed identical.
    assert.equal(report.state, 'Progressing');
    assert.equal(report.reason, 'NoSynchronousMode');
    assert.equal(report.progress?.bytesTotal, 16 << 20);
    assert.ok((report.progress?.bytesOverWan ?? 0) < 10 << 20, JSON.stringify(report.progress));

    const st = (await (await fetch(`${url}/status`)).json()) as SourceStatus;
    assert.equal(st.changeSource, 'hash-scan');
    assert.equal(st.bytesSent, 8 << 20); // the zero half never crossed
    const v = (await provider.verify(req, signal))[0] as Verification;
    assert.ok(v.match);
    assert.equal(v.sourceSha256, await sha256File(disk));

    const index = Buffer.from(await (await fetch(`http://127.0.0.1:${target.httpPort}/index`)).arrayBuffer());
    assert.equal(index.length, 24 + (16 << 20) / 4096 * 16);

    await provider.release(req, signal);
    assert.equal(await exited, 0);
    assert.match(stdout, /"phase":"Released"/);
    const gone = await provider.sync(req, AbortSignal.timeout(5000));
    assert.equal(gone.state, 'Unavailable');
    assert.equal(gone.reason, 'StorageAgentUnreachable');
  } finally {
    source.kill('SIGKILL');
    await exited;
    unregister();
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  }
});
