// Leader election with two managers on one real API server: exactly one leads and reconciles;
// when the leader stops gracefully it releases the Lease and the standby takes over at once; when
// the leader dies without releasing, the standby takes over within the lease duration.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Cluster } from '../env/cluster.ts';
import { KubeClient, Resources } from '../../src/kube/client.ts';
import { LeaderElector, type Lease } from '../../src/kube/leader.ts';
import { Manager } from '../../src/kube/manager.ts';
import { Controller } from '../../src/kube/controller.ts';
import { OperatorMetrics } from '../../src/kube/metrics.ts';
import type { ObjectKey } from '../../src/kube/types.ts';
import { waitFor } from '../helpers/poll.ts';

let cluster: Cluster;
const NS = 'default';
const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

before(async () => {
  cluster = await startCluster({ name: 'kube-leader' });
});

after(async () => {
  await cluster?.stop();
});

function replica(id: string, lease: string) {
  const client = new KubeClient(cluster.kubeConfig);
  const reconciled: string[] = [];
  const manager = new Manager({
    client,
    metrics: new OperatorMetrics({ defaultMetrics: false }),
    leaderElection: { namespace: NS, name: lease, identity: id, ...timing },
    gracefulShutdownTimeoutMs: 5000,
  });
  const informer = manager.informer(Resources.configMap, { namespace: NS });
  manager.add(new Controller({
    name: `cm-${id}`,
    informer,
    reconciler: { reconcile: async (key: ObjectKey) => { reconciled.push(key.name); } },
  }));
  const abort = new AbortController();
  const done = manager.start(abort.signal);
  return { id, manager, reconciled, stop: async () => { abort.abort(); await done; } };
}

test('two managers: exactly one leads and reconciles; graceful stop hands over at once', async () => {
  const admin = new KubeClient(cluster.kubeConfig);
  await admin.create(Resources.configMap, { kind: 'ConfigMap', metadata: { name: 'work-1', namespace: NS } });
  const a = replica('a', 'le-graceful');
  const b = replica('b', 'le-graceful');
  try {
    await waitFor(() => a.manager.isLeader() || b.manager.isLeader(), { what: 'a leader' });
    await waitFor(() => a.manager.ready() && b.manager.ready(), { what: 'both ready (standby caches synced too)' });
    const [leader, standby] = a.manager.isLeader() ? [a, b] : [b, a];
    await waitFor(() => leader.reconciled.includes('work-1'), { what: 'leader reconciled' });
    await new Promise((r) => setTimeout(r, timing.retryPeriodMs * 4));
    assert.equal(standby.manager.isLeader(), false);
    assert.deepEqual(standby.reconciled, [], 'the standby never reconciles');
    const metrics = await leader.manager.metrics.registry.getSingleMetricAsString('leader_election_master_status');
    assert.match(metrics, /leader_election_master_status\{name="le-graceful"\} 1/);

    const t0 = Date.now();
    await leader.stop();
    const lease = await admin.get<Lease>(Resources.lease, NS, 'le-graceful');
    // Released: empty, or already taken by the standby if it won the race to this read.
    assert.ok([undefined, standby.id].includes(lease.spec?.holderIdentity), `the lease was released (holder ${lease.spec?.holderIdentity})`);
    await waitFor(() => standby.manager.isLeader(), { what: 'standby takes over', timeoutMs: timing.leaseDurationMs });
    const tookMs = Date.now() - t0;
    await waitFor(() => standby.reconciled.includes('work-1'), { what: 'new leader reconciles' });
    assert.ok(tookMs < timing.leaseDurationMs, `takeover after release took ${tookMs} ms`);
    console.log(`leader: takeover after a graceful release ${tookMs} ms`);
    const after = await admin.get<Lease>(Resources.lease, NS, 'le-graceful');
    assert.equal(after.spec?.holderIdentity, standby.id);
    assert.equal(after.spec?.leaseTransitions, 1);
  } finally {
    await a.stop();
    await b.stop();
    await admin.rest.close();
  }
});

test('a leader that dies without releasing is replaced within the lease duration', async () => {
  const client = new KubeClient(cluster.kubeConfig);
  const crashed = new AbortController();
  const ghost = new LeaderElector({
    client, namespace: NS, name: 'le-crash', identity: 'ghost', ...timing, releaseOnCancel: false,
    onStartedLeading: () => undefined,
  });
  const ghostRun = ghost.run(crashed.signal);
  await waitFor(() => ghost.isLeader(), { what: 'ghost leads' });
  const b = replica('b', 'le-crash');
  try {
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(b.manager.isLeader(), false, 'lease held by a live leader is respected');
    crashed.abort(); // stops renewing, does not release: like kill -9
    await ghostRun;
    const t0 = Date.now();
    await waitFor(() => b.manager.isLeader(), { what: 'standby takes over', timeoutMs: timing.leaseDurationMs + 2 * timing.retryPeriodMs * 2.2 + 1000 });
    const tookMs = Date.now() - t0;
    assert.ok(tookMs <= timing.leaseDurationMs + 1500, `takeover took ${tookMs} ms`);
    console.log(`leader: takeover after a crashed leader ${tookMs} ms (lease ${timing.leaseDurationMs} ms)`);
  } finally {
    await b.stop();
    await client.rest.close();
  }
});

test('two electors racing for a fresh lease: exactly one wins', async () => {
  const clients = [new KubeClient(cluster.kubeConfig), new KubeClient(cluster.kubeConfig), new KubeClient(cluster.kubeConfig)];
  const stop = new AbortController();
  const electors = clients.map((client, i) => new LeaderElector({
    client, namespace: NS, name: 'le-race', identity: `r${i}`, ...timing, onStartedLeading: () => undefined,
  }));
  const runs = electors.map((e) => e.run(stop.signal));
  try {
    await waitFor(() => electors.some((e) => e.isLeader()), { what: 'someone leads' });
    for (let i = 0; i < 10; i++) {
      assert.equal(electors.filter((e) => e.isLeader()).length, 1);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    stop.abort();
    await Promise.all(runs);
    await Promise.all(clients.map((c) => c.rest.close()));
  }
});

test('a leader whose lease is taken over stops reconciling: its term signal aborts, then it campaigns again', async () => {
  const client = new KubeClient(cluster.kubeConfig);
  const terms: AbortSignal[] = [];
  let stopped = 0;
  const stop = new AbortController();
  const elector = new LeaderElector({
    client, namespace: NS, name: 'le-stolen', identity: 'victim', ...timing,
    onStartedLeading: (signal) => terms.push(signal),
    onStoppedLeading: () => stopped++,
  });
  const run = elector.run(stop.signal);
  try {
    await waitFor(() => elector.isLeader(), { what: 'victim leads' });
    const lease = await client.get<Lease>(Resources.lease, NS, 'le-stolen');
    const now = new Date().toISOString().replace('Z', '000Z');
    await client.update<Lease>(Resources.lease, { ...lease, spec: { ...lease.spec, holderIdentity: 'thief', renewTime: now, acquireTime: now } });
    const t0 = Date.now();
    await waitFor(() => terms[0].aborted, { what: 'term aborted', timeoutMs: timing.renewDeadlineMs + 1000 });
    const lostMs = Date.now() - t0;
    assert.ok(lostMs <= timing.retryPeriodMs * 2 + 500, `noticed the takeover after ${lostMs} ms`);
    assert.equal(elector.isLeader(), false);
    assert.equal(elector.getLeader(), 'thief');
    assert.equal(stopped, 1);
    // The thief never renews: after the lease duration the victim wins again, in a new term.
    await waitFor(() => elector.isLeader(), { what: 're-elected', timeoutMs: timing.leaseDurationMs * 2 + 2000 });
    assert.equal(terms.length, 2);
    assert.equal(terms[1].aborted, false);
  } finally {
    stop.abort();
    await run;
    await client.rest.close();
  }
});

test('a leader renews from the Lease it last wrote: no GET per renewal (client-go\'s fast path)', async () => {
  const client = new KubeClient(cluster.kubeConfig);
  let gets = 0;
  let updates = 0;
  const tryGet = client.tryGet.bind(client);
  const update = client.update.bind(client);
  client.tryGet = ((ref, ns, name, signal) => { if (ref === Resources.lease) gets++; return tryGet(ref, ns, name, signal); }) as typeof client.tryGet;
  client.update = ((ref, obj, signal) => { if (ref === Resources.lease) updates++; return update(ref, obj, signal); }) as typeof client.update;
  const stop = new AbortController();
  const elector = new LeaderElector({ client, namespace: NS, name: 'le-fast-path', identity: 'solo', ...timing, onStartedLeading: () => undefined });
  const run = elector.run(stop.signal);
  try {
    await waitFor(() => elector.isLeader(), { what: 'solo leads' });
    const getsWhenLeading = gets;
    await waitFor(() => updates >= 5, { what: 'five renewals' });
    assert.equal(gets, getsWhenLeading, `${gets - getsWhenLeading} Lease GETs during ${updates} renewals`);
    const lease = await client.get<Lease>(Resources.lease, NS, 'le-fast-path');
    assert.equal(lease.spec?.holderIdentity, 'solo');
  } finally {
    stop.abort();
    await run;
    await client.rest.close();
  }
});
