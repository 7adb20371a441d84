// Informer against a real kube-apiserver: list+watch, handlers, resume after an API server
// restart, relist on 410 Gone (forced with a too-old resourceVersion), and periodic resync.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Cluster } from '../env/cluster.ts';
import { KubeClient, Resources } from '../../src/kube/client.ts';
import { Informer, restListWatcher, type ListWatcher } from '../../src/kube/informer.ts';
import { RestartBackoff } from '../../src/kube/backoff.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { waitFor } from '../helpers/poll.ts';

let cluster: Cluster;
let client: KubeClient;
const NS = 'informer-test';

before(async () => {
  cluster = await startCluster({ name: 'kube-informer' });
  client = new KubeClient(cluster.kubeConfig);
  await client.create(Resources.namespace, { kind: 'Namespace', metadata: { name: NS } });
});

after(async () => {
  await client?.rest.close();
  await cluster?.stop();
});

const cm = (name: string, data: Record<string, string> = {}) => ({ kind: 'ConfigMap', metadata: { name, namespace: NS }, data });

test('lists, watches, and delivers add/update/delete to handlers', async () => {
  await client.create(Resources.configMap, cm('pre-existing'));
  const inf = new Informer(restListWatcher(client.rest, Resources.configMap, { namespace: NS }), { name: 'cm' });
  const seen: string[] = [];
  inf.addEventHandler({
    onAdd: (o) => seen.push(`add:${o.metadata?.name}`),
    onUpdate: (_o, n) => seen.push(`update:${n.metadata?.name}`),
    onDelete: (o) => seen.push(`delete:${o.metadata?.name}`),
  });
  inf.start();
  try {
    assert.equal(await inf.waitForSync(AbortSignal.timeout(10_000)), true);
    assert.ok(inf.hasSynced());
    assert.ok(inf.getByName(NS, 'pre-existing'));
    await client.create(Resources.configMap, cm('a'));
    await client.patchMerge(Resources.configMap, NS, 'a', { data: { k: 'v' } });
    await client.delete(Resources.configMap, NS, 'a');
    await waitFor(() => seen.includes('delete:a'), { what: 'delete event' });
    assert.deepEqual(seen, ['add:pre-existing', 'add:a', 'update:a', 'delete:a']);
    assert.equal(inf.getByName(NS, 'a'), undefined);
  } finally {
    await inf.stop();
  }
});

test('resumes after an API server restart and sees changes made afterwards', async () => {
  const inf = new Informer(restListWatcher(client.rest, Resources.configMap, { namespace: NS }), {
    name: 'cm-restart', backoff: new RestartBackoff(100, 1000),
  });
  inf.start();
  try {
    await inf.waitForSync(AbortSignal.timeout(10_000));
    const watchesBefore = inf.stats.watches;
    await cluster.restartApiServer();
    const t0 = Date.now();
    await client.create(Resources.configMap, cm('after-restart'));
    await waitFor(() => inf.getByName(NS, 'after-restart') !== undefined, { what: 'object created after restart', timeoutMs: 30_000 });
    console.log(`informer: change seen ${Date.now() - t0} ms after the restarted API server came back (errors ${inf.stats.errors})`);
    assert.ok(inf.stats.watches > watchesBefore, 'the watch was re-established');
    await client.delete(Resources.configMap, NS, 'after-restart');
    await waitFor(() => inf.getByName(NS, 'after-restart') === undefined, { what: 'delete after restart' });
  } finally {
    await inf.stop();
  }
});

test('a watch answered with 410 Gone triggers a relist that catches up with missed changes', async () => {
  const real = restListWatcher<KubeObject>(client.rest, Resources.configMap, { namespace: NS });
  let forced = 0;
  // Resume the first watch from resourceVersion 1, which the API server no longer holds.
  const lw: ListWatcher<KubeObject> = {
    list: real.list,
    watch: (rv, onEvent, signal, timeout) => real.watch(forced++ === 0 ? '1' : rv, onEvent, signal, timeout),
  };
  await client.create(Resources.configMap, cm('gone-test'));
  const inf = new Informer(lw, { name: 'cm-gone' });
  inf.start();
  try {
    await inf.waitForSync(AbortSignal.timeout(10_000));
    await waitFor(() => inf.stats.goneRelists >= 1, { what: 'relist after 410' });
    assert.equal(inf.stats.lists, 2);
    await client.patchMerge(Resources.configMap, NS, 'gone-test', { data: { x: '1' } });
    await waitFor(() => inf.getByName(NS, 'gone-test')?.data !== undefined, { what: 'update after relist' });
  } finally {
    await inf.stop();
  }
});

test('periodic resync re-delivers every cached object as an update', async () => {
  const inf = new Informer(restListWatcher(client.rest, Resources.configMap, { namespace: NS }), { name: 'cm-resync', resyncPeriodMs: 200 });
  let resyncs = 0;
  inf.addEventHandler({ onUpdate: (o, n) => { if (o === n) resyncs++; } });
  inf.start();
  try {
    await inf.waitForSync(AbortSignal.timeout(10_000));
    const objects = inf.keys().length;
    assert.ok(objects >= 1);
    await waitFor(() => resyncs >= 2 * objects, { what: 'two resync rounds', timeoutMs: 5000 });
  } finally {
    await inf.stop();
  }
});

test('watches the server ends (timeoutSeconds) are resumed from the last resourceVersion without a relist', async () => {
  const inf = new Informer(restListWatcher(client.rest, Resources.configMap, { namespace: NS }), { name: 'cm-short', watchTimeoutSeconds: [1, 1] });
  inf.start();
  try {
    await inf.waitForSync(AbortSignal.timeout(10_000));
    await waitFor(() => inf.stats.watches >= 3, { what: 'three watches', timeoutMs: 10_000 });
    await client.create(Resources.configMap, cm('between-watches'));
    await waitFor(() => inf.getByName(NS, 'between-watches') !== undefined, { what: 'seen' });
    assert.equal(inf.stats.lists, 1, 'no relist');
    assert.equal(inf.stats.errors, 0, 'a server-side end is not an error');
  } finally {
    await inf.stop();
  }
});
