// Unauthenticated and foreign peers against the real agent processes (`cloudnet agent target`,
// `cloudnet agent source`): each is refused before it reaches the volume or the guest, and none of
// them disturbs the source's connection while it copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from '../helpers/ports.ts';
import { clientTlsOptions, type AgentCredentials, type AgentRole } from '../../src/storage/agent-auth.ts';
import { AgentHttpError, callAgent } from '../../src/storage/http.ts';
import * as P from '../../src/storage/protocol.ts';
import type { SourceStatus } from '../../src/storage/status.ts';
import type { TargetStatus } from '../../src/storage/target.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { onExit } from '../helpers/exit.ts';
import { startLink, startTargetProcess, testCredentials, writeCredentials } from './storage-helpers.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MiB = 1 << 20;

/** What a peer got from the target's data port for a hello: the target's hello, or nothing. */
async function dataPortAttempt(port: number, o: { tls?: { creds: AgentCredentials }; token: string }): Promise<'answered' | 'refused'> {
  const hello = P.encodeHello({ volumeBytes: 16 * MiB, volumeId: 'disk.raw', codec: 'none', token: o.token });
  return new Promise((resolveAttempt) => {
    let answered = false;
    const s = o.tls
      // The attacker does not check the server (any certificate will do for it).
      ? tls.connect({ host: '127.0.0.1', port, ...clientTlsOptions(o.tls.creds, 'target'), rejectUnauthorized: false, checkServerIdentity: () => undefined })
      : tcpConnect({ host: '127.0.0.1', port });
    s.once(o.tls ? 'secureConnect' : 'connect', () => s.write(Buffer.concat([hello, P.encodeRequest({ flags: 0, type: P.CMD_WRITE, handle: 1n, offset: 0, length: 4096 }, Buffer.alloc(4096, 0x41))])));
    s.on('data', () => { answered = true; s.destroy(); });
    s.on('error', () => undefined);
    s.on('close', () => resolveAttempt(answered ? 'answered' : 'refused'));
    setTimeout(() => s.destroy(), 3000).unref();
  });
}

/** POST /verify?pause=1 to the source agent as someone else: the HTTP status, or 'tls' when no TLS session came up. */
async function verifyAttempt(base: string, who: AgentCredentials, expect: AgentRole, token?: string): Promise<number | 'tls'> {
  try {
    await callAgent({ ...who, token: token ?? who.token }, expect, base, '/verify?pause=1&resume=1', { method: 'POST', timeoutMs: 5000 });
    return 200;
  } catch (e) {
    return e instanceof AgentHttpError ? e.status : 'tls';
  }
}

function plainHttpAttempt(port: number): Promise<number | 'refused'> {
  return new Promise((resolveAttempt) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/verify?pause=1' }, (res) => { res.resume(); resolveAttempt(res.statusCode ?? 0); });
    req.on('error', () => resolveAttempt('refused'));
    req.end();
  });
}

test('peers without the migration\'s credentials are refused by both agents; the volume and the copy are untouched', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-storage-auth-'));
  const unregisterDir = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const creds = testCredentials('6c1f0a52-0000-4000-8000-00000000aaaa');
  const foreign = testCredentials('6c1f0a52-0000-4000-8000-00000000bbbb');
  const volume = join(dir, 'target.raw');
  const disk = join(dir, 'disk.raw');
  const data = crypto.randomBytes(32 * MiB);
  writeFileSync(disk, data);
  const diskBefore = await sha256File(disk);
  const target = await startTargetProcess(volume, creds.target);
  const targetHttp = `https://127.0.0.1:${target.httpPort}`;
  const targetStatus = async () => JSON.parse((await callAgent(creds.operator, 'target', targetHttp, '/status')).toString()) as TargetStatus;
  let source: ReturnType<typeof spawn> | undefined;
  const link = await startLink(target.port, 8 * MiB); // a few seconds of copying to attack during
  try {
    // 1. Before any source: nobody without the source's certificate gets a hello, and the volume
    //    is not even created.
    const attacks = async (): Promise<string[]> => [
      await dataPortAttempt(target.port, { token: creds.source.token }), // plain TCP, even with the token
      await dataPortAttempt(target.port, { tls: { creds: foreign.source }, token: creds.source.token }), // another migration's source
      await dataPortAttempt(target.port, { tls: { creds: creds.operator }, token: creds.source.token }), // right CA, wrong role
      await dataPortAttempt(target.port, { tls: { creds: creds.target }, token: creds.source.token }), // right CA, wrong role
    ];
    assert.deepEqual(await attacks(), ['refused', 'refused', 'refused', 'refused']);
    assert.equal(existsSync(volume), false, 'a refused peer made the target create its volume');
    let ts = await targetStatus();
    assert.equal(ts.connections, 0);
    assert.equal(ts.refused, 4);
    assert.equal(ts.bytesApplied, 0);
    // The target's API refuses the same peers.
    await assert.rejects(callAgent(foreign.operator, 'target', targetHttp, '/index', { timeoutMs: 5000 }), (e) => !(e instanceof AgentHttpError));
    await assert.rejects(callAgent({ ...creds.operator, token: foreign.operator.token }, 'target', targetHttp, '/index'), (e) => e instanceof AgentHttpError && e.status === 401);
    assert.equal(await plainHttpAttempt(target.httpPort), 'refused');

    // 2. The real source connects and copies; the same attacks during the copy neither get in nor
    //    take its connection over.
    const httpPort = await freePort();
    source = spawn('setpriv', ['--pdeathsig', 'KILL', join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'src/cli.ts'), 'agent', 'source',
      '--disk', disk, '--target', `127.0.0.1:${link.port}`, '--target-http', targetHttp, '--http', `127.0.0.1:${httpPort}`, '--work-dir', dir,
      '--codec', 'none', '--window-mb', '2', '--credentials', writeCredentials(join(dir, 'source-credentials'), creds.source)],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
    const src = source;
    const unregister = onExit(() => src.kill('SIGKILL'));
    const sourceBase = `https://127.0.0.1:${httpPort}`;
    const sourceStatus = async () => JSON.parse((await callAgent(creds.operator, 'source', sourceBase, '/status')).toString()) as SourceStatus;
    for (let i = 0; i < 200; i++) {
      try {
        if ((await sourceStatus()).bytesSent > 4 * MiB) break;
      } catch { /* not serving yet */ }
      await delay(50);
    }
    assert.deepEqual(await attacks(), ['refused', 'refused', 'refused', 'refused']);
    // POST /verify?pause=1 (pauses a QEMU guest) as anyone but the operator: refused, never run.
    assert.equal(await plainHttpAttempt(httpPort), 'refused');
    assert.equal(await verifyAttempt(sourceBase, foreign.operator, 'source'), 'tls');
    assert.equal(await verifyAttempt(sourceBase, creds.operator, 'source', foreign.operator.token), 401);
    assert.equal(await verifyAttempt(sourceBase, creds.source, 'source'), 403); // right CA and token, wrong role
    let st = await sourceStatus();
    assert.equal(st.verification, undefined);
    assert.ok(st.phase === 'Copying' || st.phase === 'Converged', st.phase);
    for (let i = 0; i < 600 && (st = await sourceStatus()).phase !== 'Converged'; i++) await delay(100);
    assert.equal(st.phase, 'Converged');
    assert.equal(st.link.reconnects, 0, 'a refused peer disturbed the source\'s connection');
    ts = await targetStatus();
    assert.equal(ts.connections, 1);
    assert.equal(ts.refused, 8);
    await callAgent(creds.operator, 'source', sourceBase, '/release', { method: 'POST' });
    await new Promise((r) => src.once('exit', r));
    unregister();
    assert.equal(await sha256File(volume), await sha256File(disk), 'the target volume is not the source disk');
    assert.equal(await sha256File(disk), diskBefore, 'the source disk was modified');
  } finally {
    source?.kill('SIGKILL');
    await link.close();
    await target.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  }
});
