// Controller result handling and key mapping, on an in-memory ListWatcher (no API server needed
// for the queueing logic; the real-server paths are in test/integration/kube-*.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import winston from 'winston';
import { Informer, type ListWatcher } from '../../../src/kube/informer.ts';
import { Controller, TerminalError, mapFromLabels, mapToOwners, generationChanged } from '../../../src/kube/controller.ts';
import { OperatorMetrics } from '../../../src/kube/metrics.ts';
import { FakeClock, type Clock } from '../../../src/kube/clock.ts';
import type { KubeObject, WatchEvent } from '../../../src/kube/rest.ts';
import type { ObjectKey, ReconcileContext, ReconcileResult } from '../../../src/kube/types.ts';
import { waitFor } from '../../helpers/poll.ts';

/** A ListWatcher over an in-memory set of objects; push() emits watch events. */
function memoryListWatcher(initial: KubeObject[]) {
  let rv = 1;
  let emit: ((e: WatchEvent) => void) | undefined;
  const lw: ListWatcher<KubeObject> = {
    list: async () => ({ items: initial, metadata: { resourceVersion: String(rv) } }),
    watch: (_rv, onEvent, signal) => new Promise<void>((resolve) => {
      emit = onEvent;
      signal.addEventListener('abort', () => resolve(), { once: true });
    }),
  };
  const push = (type: WatchEvent['type'], obj: KubeObject) => {
    rv++;
    emit?.({ type, object: { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } } });
  };
  return { lw, push };
}

const obj = (name: string, extra: Partial<KubeObject> = {}): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: '1', generation: 1 }, ...extra });

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, lines };
}

function run(reconcile: (key: ObjectKey, ctx: ReconcileContext) => Promise<ReconcileResult | void>, objects = [obj('a')], clock?: Clock) {
  const { lw, push } = memoryListWatcher(objects);
  const informer = new Informer(lw);
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const { log, lines } = captureLogger();
  const ctrl = new Controller({ name: 'test', informer, reconciler: { reconcile }, metrics, log, maxConcurrentReconciles: 2, drainTimeoutMs: 2000, clock });
  const abort = new AbortController();
  informer.start();
  const done = ctrl.start(abort.signal);
  return { push, ctrl, metrics, lines, stop: async () => { abort.abort(); await done; await informer.stop(); } };
}

test('errors are retried with growing backoff, then success forgets', async () => {
  // The queue's time is a FakeClock: each retry must wait exactly its backoff, not a tick less.
  const clock = new FakeClock();
  let calls = 0;
  const h = run(async () => {
    calls++;
    if (calls < 5) throw new Error('boom');
  }, [obj('a')], clock);
  try {
    for (const [i, backoffMs] of [5, 10, 20, 40].entries()) {
      await waitFor(() => calls === i + 1 && clock.pendingTimers() === 1, { what: `retry ${i + 1} scheduled` });
      clock.advance(backoffMs - 1);
      await setImmediate();
      assert.equal(calls, i + 1, `retry ${i + 1} waits ${backoffMs} ms`);
      clock.advance(1);
    }
    await waitFor(() => calls === 5, { what: '5 attempts' });
    const text = await h.metrics.registry.metrics();
    assert.match(text, /controller_runtime_reconcile_errors_total\{controller="test"\} 4/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="test",result="success"\} 1/);
    assert.match(text, /workqueue_retries_total\{name="test",controller="test"\} 4/);
    assert.match(text, /controller_runtime_max_concurrent_reconciles\{controller="test"\} 2/);
  } finally {
    await h.stop();
  }
});

test('requeueAfterMs schedules a new reconcile; TerminalError does not retry', async () => {
  const calls: string[] = [];
  const h = run(async (key) => {
    calls.push(key.name);
    if (key.name === 'a' && calls.filter((c) => c === 'a').length === 1) return { requeueAfterMs: 30 };
    if (key.name === 'bad') throw new TerminalError('invalid spec');
  }, [obj('a'), obj('bad')]);
  try {
    await waitFor(() => calls.filter((c) => c === 'a').length === 2, { what: 'a twice' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(calls.filter((c) => c === 'bad').length, 1);
    assert.equal(calls.filter((c) => c === 'a').length, 2);
  } finally {
    await h.stop();
  }
});

test('each reconcile gets a unique reconcileID and a logger keyed controller/namespace/name/reconcileID', async () => {
  const ids: string[] = [];
  const h = run(async (_key, ctx) => {
    ids.push(ctx.reconcileID);
    ctx.log.info('hello');
  }, [obj('a'), obj('b')]);
  try {
    await waitFor(() => ids.length === 2, { what: '2 reconciles' });
    h.push('MODIFIED', obj('a'));
    await waitFor(() => ids.length === 3, { what: '3 reconciles' });
    assert.equal(new Set(ids).size, 3);
    const hello = h.lines.filter((l) => l.message === 'hello');
    assert.equal(hello.length, 3);
    for (const l of hello) {
      assert.equal(l.controller, 'test');
      assert.equal(l.namespace, 'ns');
      assert.ok(l.name === 'a' || l.name === 'b');
      assert.ok(ids.includes(l.reconcileID as string));
    }
  } finally {
    await h.stop();
  }
});

test('shutdown waits for the in-flight reconcile, whose signal is aborted', async () => {
  let sawAbort = false;
  let finished = false;
  let started = false;
  const h = run(async (_key, ctx) => {
    started = true;
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    sawAbort = true;
    await new Promise((r) => setTimeout(r, 50));
    finished = true;
  });
  await waitFor(() => started, { what: 'started' });
  await h.stop();
  assert.ok(sawAbort);
  assert.ok(finished, 'stop() returned only after the reconcile finished');
});

test('related objects map to primary keys (owners, labels for other clusters)', async () => {
  const reconciled: string[] = [];
  const primary = memoryListWatcher([obj('vm-mig')]);
  const related = memoryListWatcher([]);
  const informer = new Informer(primary.lw);
  const relatedInformer = new Informer(related.lw);
  const ctrl = new Controller({
    name: 'map', informer,
    reconciler: { reconcile: async (k) => { reconciled.push(`${k.namespace}/${k.name}`); } },
    watches: [{ informer: relatedInformer, map: mapFromLabels('example.io/ns', 'example.io/name') }],
  });
  informer.start();
  relatedInformer.start();
  const abort = new AbortController();
  const done = ctrl.start(abort.signal);
  try {
    await waitFor(() => reconciled.length === 1, { what: 'initial' });
    related.push('ADDED', { metadata: { name: 'remote-vm', namespace: 'other', labels: { 'example.io/ns': 'ns', 'example.io/name': 'vm-mig' } } });
    await waitFor(() => reconciled.length === 2, { what: 'mapped' });
    related.push('ADDED', { metadata: { name: 'unlabelled', namespace: 'other' } });
    // A change the cache does not hold (only its resourceVersion moved) enqueues nothing; a real one does.
    const labels = { 'example.io/ns': 'ns', 'example.io/name': 'vm-mig' };
    related.push('MODIFIED', { metadata: { name: 'remote-vm', namespace: 'other', labels, resourceVersion: '7' } });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(reconciled.length, 2, 'a resourceVersion-only update was reconciled');
    related.push('MODIFIED', { metadata: { name: 'remote-vm', namespace: 'other', labels, resourceVersion: '8' }, status: { phase: 'Running' } } as KubeObject);
    await waitFor(() => reconciled.length === 3, { what: 'the status change mapped' });
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(reconciled, ['ns/vm-mig', 'ns/vm-mig', 'ns/vm-mig']);
  } finally {
    abort.abort();
    await done;
    await informer.stop();
    await relatedInformer.stop();
  }
});

test('mapToOwners and generationChanged', () => {
  const owned = obj('pod', { metadata: { name: 'pod', namespace: 'ns', ownerReferences: [
    { apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', name: 'm1', uid: 'u1' },
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'u2' },
  ] } });
  assert.deepEqual(mapToOwners('WanMigration')(owned), [{ namespace: 'ns', name: 'm1' }]);
  assert.deepEqual(mapToOwners('WanMigration', 'other.io')(owned), []);
  assert.equal(generationChanged(obj('a'), obj('a')), false);
  assert.equal(generationChanged(obj('a'), { metadata: { name: 'a', generation: 2 } }), true);
});

test('shutdown gives up waiting for a reconcile that ignores its signal after drainTimeoutMs', async () => {
  let started = false;
  let release!: () => void;
  const stuck = new Promise<void>((r) => (release = r));
  const { lw } = memoryListWatcher([obj('a')]);
  const informer = new Informer(lw);
  const clock = new FakeClock();
  const { log, lines } = captureLogger();
  const ctrl = new Controller({ name: 'stuck', informer, drainTimeoutMs: 100, log, clock,
    reconciler: { reconcile: async () => { started = true; await stuck; } } });
  informer.start();
  const abort = new AbortController();
  const done = ctrl.start(abort.signal);
  let stopped = false;
  try {
    await waitFor(() => started, { what: 'started' });
    abort.abort();
    const finished = done.then(() => { stopped = true; });
    await waitFor(() => clock.pendingTimers() === 1, { what: 'the drain timer' });
    clock.advance(99);
    await setImmediate();
    assert.equal(stopped, false, 'still draining before drainTimeoutMs');
    clock.advance(1);
    await finished;
    assert.ok(lines.some((l) => l.level === 'warn' && /did not finish before the drain timeout/.test(String(l.message))), 'the give-up is logged');
  } finally {
    release();
    await informer.stop();
  }
});
