// The agents as the operator runs them: `cloudnet agent target` and `cloudnet agent source` as
// processes with their credentials directories, observed through the StoragePreCopy provider with
// the operator's credentials (the launcher here is a stand-in that reports the started process).
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
import { callAgent } from '../../src/storage/http.ts';
import { AgentStoragePreCopy, type AgentLauncher } from '../../src/storage/provider.ts';
import type { SourceStatus } from '../../src/storage/status.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { onExit } from '../helpers/exit.ts';
import { startTargetProcess, testCredentials, writeCredentials } from './storage-helpers.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('cloudnet agent source|target over mutual TLS, observed by the StoragePreCopy provider', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-storage-cli-'));
  const unregisterDir = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const creds = testCredentials();
  const target = await startTargetProcess(join(dir, 'target.raw'), creds.target);
  const httpPort = await freePort();
  const disk = join(dir, 'disk.raw');
  const data = Buffer.alloc(16 << 20);
  crypto.randomFillSync(data, 0, 4 << 20);
  data.fill('a text-like region of a disk image ', 8 << 20, 12 << 20);
  writeFileSync(disk, data);
  const source = spawn('setpriv', ['--pdeathsig', 'KILL', join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'src/cli.ts'), 'agent', 'source',
    '--disk', disk, '--target', `127.0.0.1:${target.port}`, '--target-http', `https://127.0.0.1:${target.httpPort}`,
    '--http', `127.0.0.1:${httpPort}`, '--work-dir', dir, '--credentials', writeCredentials(join(dir, 'source-credentials'), creds.source)],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  const unregister = onExit(() => source.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => source.once('exit', (code) => r(code)));
  const targetExited = new Promise<number | null>((r) => target.child.once('exit', (code) => r(code)));
  let stdout = '';
  source.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  try {
    const base = `https://127.0.0.1:${httpPort}`;
    let finished = 0;
    const launcher: AgentLauncher = {
      async ensure() { return { agents: [{ disk: 'disk', base, pod: 'test/source' }], credentials: creds.operator }; },
      async finish() { finished++; return undefined; },
      async release() {},
    };
    const req = { migration: { metadata: { name: 'wm' } } } as unknown as StorageRequest;
    const provider = new AgentStoragePreCopy({ launcher });
    const signal = AbortSignal.timeout(60_000);
    let report = await provider.sync(req, signal);
    for (let i = 0; i < 400 && report.state !== 'Ready'; i++) {
      await delay(100);
      report = await provider.sync(req, signal);
    }
    // Hash scans have no synchronous mode: converged, and KubeVirt's mirror carries the rest.
    assert.equal(report.state, 'Ready', report.message);
    assert.equal(report.reason, 'Converged');
    assert.equal(finished, 1);
    assert.equal(report.progress?.bytesTotal, 16 << 20);
    assert.ok((report.progress?.bytesOverWan ?? 0) < 10 << 20, JSON.stringify(report.progress));

    const st = JSON.parse((await callAgent(creds.operator, 'source', base, '/status')).toString()) as SourceStatus;
    assert.equal(st.changeSource, 'hash-scan');
    assert.equal(st.bytesSent, 8 << 20); // the zero half never crossed
    const v = (await provider.verify(req, signal))[0];
    assert.ok(v.match);
    assert.equal(v.sourceSha256, await sha256File(disk));

    const index = await callAgent(creds.operator, 'target', `https://127.0.0.1:${target.httpPort}`, '/index', { maxBytes: 64 << 20 });
    assert.equal(index.length, 24 + (16 << 20) / 4096 * 16);

    // Release: the source tells the target it is done, and both exit.
    await callAgent(creds.operator, 'source', base, '/release', { method: 'POST' });
    assert.equal(await exited, 0);
    assert.equal(await targetExited, 0);
    assert.match(stdout, /"phase":"Released"/);
    const gone = await provider.sync(req, AbortSignal.timeout(5000));
    assert.equal(gone.state, 'Progressing');
    assert.equal(gone.reason, 'StorageAgentUnreachable');
    assert.doesNotMatch(gone.message, /ECONNREFUSED|127\.0\.0\.1/);
  } finally {
    source.kill('SIGKILL');
    await exited;
    unregister();
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  }
});
