// `cloudnet operator` as real processes against a real API server: two replicas with leader
// election; /healthz, /readyz (the standby is ready too) and /metrics; SIGTERM on the leader exits
// 0 after releasing the Lease, and the standby takes over at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useClusters, applyManifests, freePort, type Manifest } from '../env/index.ts';
import { allCRDs } from '../../src/api/crds.ts';
import { KubeClient, Resources } from '../../src/kube/client.ts';
import type { Lease } from '../../src/kube/leader.ts';
import { waitFor } from '../helpers/poll.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LEASE = 'cloudnet-operator-leader';
const children: ChildProcess[] = [];

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const env = useClusters(1, { setup: async ([c]) => { await applyManifests(c, allCRDs() as unknown as Manifest[]); } });

interface Replica {
  proc: ChildProcess;
  metricsPort: number;
  healthPort: number;
  exited: Promise<number | null>;
  logs: string[];
}

async function startReplica(kubeconfigPath: string): Promise<Replica> {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const proc = spawn(process.execPath, [join(root, 'src/cli.ts'), 'operator', '--kubeconfig', kubeconfigPath,
    '--leader-elect', '--leader-election-namespace', 'default', '--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '250ms',
    // Plain HTTP metrics: this test reads the leader gauge as admin; the authenticated HTTPS
    // default is tested in metrics-auth.test.ts and operator-image.test.ts.
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--metrics-secure=false', '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
    '--graceful-shutdown-timeout', '5s'], { cwd: root, env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proc);
  const logs: string[] = [];
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => logs.push(d));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  return { proc, metricsPort, healthPort, exited, logs };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

const leaderGauge = (metrics: string) => /leader_election_master_status\{name="cloudnet-operator-leader"\} (\d)/.exec(metrics)?.[1];

test('two operator replicas: one leads, both ready, SIGTERM releases the lease and the standby takes over', async () => {
  const [cluster] = env.clusters;
  const admin = new KubeClient(cluster.kubeConfig);
  try {
    let t = Date.now();
    const a = await startReplica(cluster.kubeconfigPath);
    const b = await startReplica(cluster.kubeconfigPath);
    for (const r of [a, b]) {
      await waitFor(async () => (await get(r.healthPort, '/healthz')).status === 200, { what: 'healthz' });
      await waitFor(async () => (await get(r.healthPort, '/readyz')).status === 200, { what: 'readyz' });
    }
    console.log(`operator: both replicas ready after ${Date.now() - t} ms`);
    t = Date.now();
    assert.equal((await get(a.healthPort, '/nope')).status, 404);
    await waitFor(async () => (await admin.tryGet<Lease>(Resources.lease, 'default', LEASE))?.spec?.holderIdentity !== undefined, { what: 'a leader' });
    const gauges = async () => [leaderGauge((await get(a.metricsPort, '/metrics')).body), leaderGauge((await get(b.metricsPort, '/metrics')).body)];
    await waitFor(async () => (await gauges()).sort().join() === '0,1', { what: 'one master, one backup' });
    console.log(`operator: leader elected ${Date.now() - t} ms after readiness`);
    const [ga] = await gauges();
    const [leader, standby] = ga === '1' ? [a, b] : [b, a];

    const metrics = (await get(leader.metricsPort, '/metrics')).body;
    for (const name of ['controller_runtime_max_concurrent_reconciles', 'controller_runtime_active_workers', 'workqueue_depth', 'workqueue_adds_total',
      'workqueue_retries_total', 'workqueue_unfinished_work_seconds', 'workqueue_longest_running_processor_seconds', 'process_cpu_seconds_total']) {
      assert.match(metrics, new RegExp(`^${name}`, 'm'), `${name} exported`);
    }
    assert.match(metrics, /controller_runtime_max_concurrent_reconciles\{controller="wanmigration"\} 1/);
    assert.match(metrics, /controller_runtime_max_concurrent_reconciles\{controller="site"\} 1/);

    const t0 = Date.now();
    leader.proc.kill('SIGTERM');
    assert.equal(await leader.exited, 0, leader.logs.join(''));
    const stopMs = Date.now() - t0;
    await waitFor(async () => leaderGauge((await get(standby.metricsPort, '/metrics')).body) === '1', { what: 'standby leads', timeoutMs: 3000 });
    const takeoverMs = Date.now() - t0;
    assert.ok(stopMs < 5000, `graceful stop took ${stopMs} ms`);
    assert.ok(takeoverMs < 3000, `takeover after SIGTERM took ${takeoverMs} ms (lease duration 3 s)`);
    assert.match(leader.logs.join(''), /released leader lease/);
    console.log(`operator: graceful stop ${stopMs} ms, takeover ${takeoverMs} ms`);

    standby.proc.kill('SIGINT');
    assert.equal(await standby.exited, 0);
    const lease = await admin.get<Lease>(Resources.lease, 'default', LEASE);
    assert.equal(lease.spec?.holderIdentity, undefined);
  } finally {
    await admin.rest.close();
  }
});
