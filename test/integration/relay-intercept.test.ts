// Transparent interception at the gateway, in network namespaces: the sender relay runs in site
// A's gateway with nftables redirects (src/link/intercept.ts), the receiver in site B's gateway.
// A client on site A's node connects straight to a server on site B's node (no relay address
// anywhere in its path):
//  - a registered flow (destination + port) is redirected to the sender's per-flow port, carried
//    byte-exact, delivered by the receiver to the original destination, and the session is
//    attributed to the WanMigration that registered it;
//  - an unregistered flow, and a released one, pass through untouched;
//  - the registration API refuses a wrong token; the receiver refuses a destination outside the
//    networks it serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RelayApiClient, RelayApiError } from '../../src/operator/relay-client/api-client.ts';
import type { RegistrationBody } from '../../src/operator/relay-client/api-client.ts';
import { createSites } from '../env/wan.ts';
import { runTransfer, startSink } from '../env/tcp-probe.ts';
import { makePki } from './relay-helpers.ts';

const NODE = path.resolve('node_modules/.bin/node');
const CLI = path.resolve('src/cli.ts');

function waitForLine(p: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; output: ${buf.slice(-2000)}`)), ms);
    const on = (c: Buffer): void => {
      buf += c.toString();
      if (re.test(buf)) { clearTimeout(timer); p.stderr!.off('data', on); p.stderr!.resume(); resolve(); }
    };
    p.stderr!.on('data', on);
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited (${code}): ${buf.slice(-2000)}`)); });
  });
}

interface Sess { id: number; target: string; destination?: string; migration?: { namespace: string; name: string; migrationID: string }; closeReason?: string; inputSha256?: string; outputSha256?: string }

const settings = { compression: 'Zstd' as const, dedup: true, deltaPages: true, cacheSizeMiB: 64, opaque: false };

test('gateway interception: registered flows go through the relay pair, others pass untouched', { timeout: 180_000 }, async (t) => {
  const sites = await createSites({ delayMs: 2 });
  const pki = makePki();
  const dir = fs.mkdtempSync(path.join(pki.dir, 'api-'));
  const procs: ChildProcess[] = [];
  const sinks: { stop(): Promise<void> }[] = [];
  t.after(async () => {
    for (const s of sinks) await s.stop();
    for (const p of procs) p.kill('SIGTERM');
    await delay(300);
    await sites.destroy();
    pki.cleanup();
  });
  const token = randomBytes(24).toString('hex');
  fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
  const sock = path.join(dir, 'relay-api.sock');
  const env = { ...process.env, LOG_LEVEL: 'info' };
  const table = `cnt_${sites.runId.replace(/-/g, '_')}`;

  const receiver = sites.spawn(sites.b.gwNs, NODE, [CLI, 'relay', 'receive', '--listen', `${sites.b.gwWanIp}:7400`, '--allow-destination', sites.b.lanCidr,
    '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey, '--cache-mb', '64', '--hash-streams', '--stats-file', path.join(dir, 'receive.json')], { env });
  procs.push(receiver);
  await waitForLine(receiver, /relay receiver ready/, 20_000);
  const sender = sites.spawn(sites.a.gwNs, NODE, [CLI, 'relay', 'send', '--peer', `${sites.b.gwWanIp}:7400`, '--servername', 'localhost',
    '--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--cache-mb', '64', '--hash-streams', '--stats-file', path.join(dir, 'send.json'),
    '--api', `unix:${sock}`, '--api-token-file', path.join(dir, 'token'), '--intercept', `nft:${table}`,
    // This link is unshaped: the relay would rightly let registered flows bypass it (relay-progress.test.ts).
    '--bypass-above-mbit', '0'], { env });
  procs.push(sender);
  await waitForLine(sender, /relay sender ready/, 20_000);
  const api = new RelayApiClient({ url: `unix://${sock}`, token });

  const [regPort, otherPort] = [45001, 45002];
  for (const p of [regPort, otherPort]) sinks.push(await startSink(sites.b.nodeNs, p, { hash: true }));
  const dest = sites.b.nodeIp;

  await test('the API refuses a wrong token', async () => {
    const rogue = new RelayApiClient({ url: `unix://${sock}`, token: 'x'.repeat(32) });
    await assert.rejects(rogue.registrations(), (e: unknown) => e instanceof RelayApiError && e.status === 401);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the API socket is private to its owner');
  });

  const body: RegistrationBody = { namespace: 'tenant-a', name: 'vm1-to-site-b', destinations: [{ host: dest, port: regPort }], settings };
  const state = await api.register('uid-1234', body);
  assert.equal(state.flows.length, 1);
  assert.equal(state.flows[0].destination, `${dest}:${regPort}`);
  const rules = (await sites.exec(sites.a.gwNs, 'nft', ['list', 'map', 'ip', table, 'flows'])).stdout;
  assert.match(rules, new RegExp(`${dest.replace(/\./g, '\\.')} \\. ${regPort} : ${state.flows[0].localPort}`), rules);

  await test('a registered flow is relayed byte-exact and attributed to its WanMigration', async () => {
    const r = await runTransfer(sites.a.nodeNs, dest, regPort, 6 << 20, { hash: true, rttSamples: 0 });
    assert.equal(r.sha256Match, true);
    assert.equal(r.sinkRemote, sites.b.gwLanIp, 'the destination saw the receiver relay (site B gateway) connect');
    const s = await session(path.join(dir, 'send.json'), (x) => x.destination === `${dest}:${regPort}`);
    assert.deepEqual(s.migration, { namespace: 'tenant-a', name: 'vm1-to-site-b', migrationID: 'uid-1234' });
    assert.equal(s.closeReason, 'ok');
    const rx = await session(path.join(dir, 'receive.json'), (x) => x.id === s.id);
    assert.equal(rx?.outputSha256, s.inputSha256, 'receiver output equals sender input');
    assert.equal(rx?.migration?.migrationID, 'uid-1234', 'the receiver knows the owner too');
  });

  await test('the flow\'s relay port takes only redirected connections', async () => {
    const r = await sites.exec(sites.a.nodeNs, 'socat', ['-u', 'OPEN:/dev/null', `TCP:${sites.a.gwLanIp}:${state.flows[0].localPort},connect-timeout=2`], { allowFail: true, timeoutMs: 10_000 });
    assert.notEqual(r.code, 0, 'a direct connection to the relay\'s flow port is dropped');
  });

  await test('an unregistered flow passes through untouched', async () => {
    const r = await runTransfer(sites.a.nodeNs, dest, otherPort, 1 << 20, { hash: true, rttSamples: 0 });
    assert.equal(r.sha256Match, true);
    assert.equal(r.sinkRemote, sites.a.nodeIp, 'the destination saw the client itself');
    await delay(1500); // the stats file is rewritten every second
    assert.equal((await sessions(path.join(dir, 'send.json'))).filter((x) => x.destination === `${dest}:${otherPort}`).length, 0, 'no relay session for it');
  });

  await test('the receiver refuses a destination outside the networks it serves', async () => {
    // Site A's gateway WAN address is routed through the gateway but is not in site B's LAN.
    await api.register('uid-outside', { ...body, name: 'outside', destinations: [{ host: sites.b.gwWanIp, port: 45009 }] });
    await assert.rejects(runTransfer(sites.a.nodeNs, sites.b.gwWanIp, 45009, 1 << 16, { rttSamples: 0, timeoutMs: 20_000 }));
    const s = await session(path.join(dir, 'send.json'), (x) => x.destination === `${sites.b.gwWanIp}:45009`);
    assert.equal(s.closeReason, 'no-target');
    assert.equal(await api.release('uid-outside'), true);
  });

  await test('a released flow passes through untouched again', async () => {
    assert.equal(await api.release('uid-1234'), true);
    assert.equal(await api.release('uid-1234'), false);
    assert.deepEqual(await api.registrations(), []);
    const r = await runTransfer(sites.a.nodeNs, dest, regPort, 1 << 20, { hash: true, rttSamples: 0 });
    assert.equal(r.sha256Match, true);
    assert.equal(r.sinkRemote, sites.a.nodeIp);
  });
});

/** Open and finished sessions in a relay's stats file. */
async function sessions(file: string, which: 'all' | 'finished' = 'all'): Promise<Sess[]> {
  try {
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { sessions?: Sess[]; finished?: Sess[] };
    return [...(which === 'all' ? j.sessions ?? [] : []), ...(j.finished ?? [])];
  } catch {
    return []; // not written yet, or being replaced
  }
}

/** The finished session that matches, once the relay's stats file files it (with its stream hash:
 *  a closed session whose hash is still being computed is listed among the live ones). */
async function session(file: string, match: (s: Sess) => boolean): Promise<Sess> {
  for (let i = 0; i < 60; i++) {
    const j = (await sessions(file, 'finished')).find((s) => match(s) && s.closeReason !== undefined);
    if (j) return j;
    await delay(250);
  }
  throw new Error(`no matching finished session in ${file}: ${JSON.stringify(await sessions(file))}`);
}
