// Manager shutdown against an in-process API stub whose requests can hang: a watch that never
// sends anything and a Lease renewal (and, in the second case, the Lease release too) that is
// never answered (the stub holds every Lease request while `hangLease` is set). Shutdown must still settle, every request the stub holds must be ended by the
// client, the Lease must be released when the stub answers, and no rejection or exception may go
// unhandled. No wall-clock bound is asserted: the shutdown step bounds run on a FakeClock that
// the tests advance only when they mean a step to time out.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { once } from 'node:events';
import winston from 'winston';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../../src/kube/client.ts';
import { Manager } from '../../../src/kube/manager.ts';
import { FakeClock } from '../../../src/kube/clock.ts';
import type { Lease } from '../../../src/kube/leader.ts';
import { waitFor } from '../../helpers/poll.ts';

const LEASE_PATH = '/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock';
const WIDGETS = '/apis/example.io/v1/widgets';

interface Held { path: string; ended: boolean }

/** A minimal API server: one Lease (get/create/update), a list and a watch of widgets that never sends. */
async function apiStub(t: TestContext) {
  let lease: Lease | undefined;
  let rv = 1;
  const state = { hangLease: false, leaseWrites: 0 };
  const held: Held[] = [];
  const hold = (req: IncomingMessage, res: ServerResponse, headersFirst: boolean) => {
    const h: Held = { path: req.url ?? '', ended: false };
    held.push(h);
    if (headersFirst) res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
    res.on('close', () => { h.ended = true; });
  };
  const json = (res: ServerResponse, code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stub');
    let body = '';
    req.on('data', (d: Buffer) => { body += String(d); });
    req.on('end', () => {
      if (url.pathname.startsWith('/apis/coordination.k8s.io/') && state.hangLease) return hold(req, res, false);
      if (url.pathname === LEASE_PATH && req.method === 'GET') {
        return lease ? json(res, 200, lease) : json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
      }
      if (url.pathname.startsWith('/apis/coordination.k8s.io/') && (req.method === 'POST' || req.method === 'PUT')) {
        state.leaseWrites++;
        const l = JSON.parse(body) as Lease;
        lease = { ...l, metadata: { ...l.metadata, resourceVersion: String(++rv) } };
        return json(res, req.method === 'POST' ? 201 : 200, lease);
      }
      if (url.pathname === WIDGETS && url.searchParams.get('watch') === 'true') return hold(req, res, true);
      if (url.pathname === WIDGETS) return json(res, 200, { kind: 'WidgetList', metadata: { resourceVersion: String(rv) }, items: [] });
      json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'stub', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'c', cluster: 'stub', user: 'u' }],
    currentContext: 'c',
  });
  return { kc, state, held, holder: () => lease?.spec?.holderIdentity ?? '' };
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); cb(); } });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, lines, steps: () => lines.filter((l) => String(l.message).startsWith('shutdown step')).map((l) => `${String(l.step)}: ${String(l.message)}`) };
}

/** Counts unhandled rejections and uncaught exceptions while a test runs. */
function unhandled(t: TestContext) {
  const seen: unknown[] = [];
  const onRejection = (r: unknown) => seen.push(r);
  process.on('unhandledRejection', onRejection);
  t.after(() => process.off('unhandledRejection', onRejection));
  return seen;
}

async function leadingManager(t: TestContext) {
  const stub = await apiStub(t);
  const client = new KubeClient(stub.kc, 'local');
  const leClient = new KubeClient(stub.kc, 'local');
  const clock = new FakeClock();
  const { log, lines, steps } = capture();
  const manager = new Manager({
    client, leaderElectionClient: leClient, log, clock, resyncPeriodMs: 0, shutdownStepTimeoutMs: 5_000,
    // The elector's own timers are real: a short retry period so renewals come quickly, and a
    // renew deadline the tests never reach (a hung request ends only when the client closes it).
    leaderElection: { namespace: 'ns', name: 'lock', identity: 'me', leaseDurationMs: 600_000, renewDeadlineMs: 300_000, retryPeriodMs: 20 },
  });
  const widgets = manager.informer({ group: 'example.io', version: 'v1', plural: 'widgets', kind: 'Widget', namespaced: false });
  let runnableStarted = 0;
  let runnableStopped = 0;
  manager.add({
    name: 'waits-for-abort',
    start: (signal) => {
      runnableStarted++;
      return new Promise<void>((resolve) => signal.addEventListener('abort', () => { runnableStopped++; resolve(); }, { once: true }));
    },
  });
  const abort = new AbortController();
  const done = manager.start(abort.signal);
  await waitFor(() => runnableStarted === 1 && widgets.hasSynced() && stub.held.some((h) => h.path.includes('watch=true')), { what: 'leading, and the watch held by the stub' });
  return { stub, client, leClient, clock, lines, steps, abort, done, counts: () => ({ runnableStarted, runnableStopped }) };
}

test('shutdown settles with a watch and a Lease renewal hanging; the Lease is released', async (t) => {
  const seen = unhandled(t);
  const m = await leadingManager(t);
  m.stub.state.hangLease = true;
  await waitFor(() => m.stub.held.some((h) => h.path.startsWith(LEASE_PATH)), { what: 'a renewal held by the stub' });
  m.stub.state.hangLease = false; // the release that follows is answered
  m.abort.abort();
  await m.done; // would never settle if a hung request were awaited without being aborted
  assert.deepEqual(m.counts(), { runnableStarted: 1, runnableStopped: 1 });
  assert.equal(m.stub.holder(), '', 'the Lease is released');
  assert.ok(m.lines.some((l) => l.message === 'shutdown complete' && l.timedOut === undefined), 'no step timed out');
  assert.deepEqual(m.steps(), ['drain reconciles', 'stop leader election', 'stop informers', 'close remote cluster clients', 'close API clients']
    .map((s) => `${s}: shutdown step done`));
  await waitFor(() => m.stub.held.every((h) => h.ended), { what: 'every held request ended by the client' });
  assert.equal(m.stub.held.length, 2, 'the watch and the renewal');
  assert.equal(m.client.rest.pending + m.leClient.rest.pending, 0);
  assert.equal(m.clock.pendingTimers(), 0, 'no shutdown bound left armed');
  await assert.rejects(m.client.rest.request('GET', WIDGETS), { name: 'RestClientClosedError' });
  assert.deepEqual(seen, []);
});

test('shutdown settles when the Lease release hangs too: that step times out, closing the clients ends it', async (t) => {
  const seen = unhandled(t);
  const m = await leadingManager(t);
  m.stub.state.hangLease = true; // the renewal, then the release's GET
  await waitFor(() => m.stub.held.some((h) => h.path.startsWith(LEASE_PATH)), { what: 'a renewal held by the stub' });
  const writes = m.stub.state.leaseWrites;
  m.abort.abort();
  // The renewal is aborted with the elector; the release's GET is the second Lease request held.
  await waitFor(() => m.stub.held.filter((h) => h.path.startsWith(LEASE_PATH)).length === 2, { what: 'the release held by the stub' });
  await waitFor(() => m.clock.pendingTimers() === 1, { what: 'the leader-election step waiting on its bound' });
  m.clock.advance(5_000);
  await m.done;
  assert.equal(m.stub.state.leaseWrites, writes, 'no Lease write answered after the hung renewal');
  assert.deepEqual(m.steps(), [
    'drain reconciles: shutdown step done',
    'stop leader election: shutdown step did not finish in time; going on',
    'stop informers: shutdown step done',
    'close remote cluster clients: shutdown step done',
    'close API clients: shutdown step done',
  ]);
  assert.deepEqual(m.lines.find((l) => l.message === 'shutdown complete')?.timedOut, ['stop leader election']);
  await waitFor(() => m.stub.held.every((h) => h.ended), { what: 'every held request ended by the client' });
  assert.equal(m.stub.held.length, 3, 'the watch, the renewal and the release');
  assert.equal(m.client.rest.pending + m.leClient.rest.pending, 0);
  assert.deepEqual(seen, []);
});
