// The test bed's control planes: two independent clusters with RBAC, objects that survive an
// API server restart, restricted users, and cleanup that leaves nothing behind, including when
// the test process crashes or is SIGKILLed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyManifests,
  createNamespace,
  kubeRequest,
  KubeRequestError,
  startCluster,
  useClusters,
  userKubeconfig,
  type Cluster,
  type Manifest,
} from '../env/index.ts';
import { waitFor } from '../helpers/poll.ts';

const env = useClusters(2, { kubevirtCrds: false });

const widgetCrd: Manifest = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.test.cloudnet.io' },
  spec: {
    group: 'test.cloudnet.io',
    scope: 'Namespaced',
    names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
    versions: [{
      name: 'v1', served: true, storage: true,
      schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } },
    }],
  },
};

const widgetPath = (ns: string, name = '') => `/apis/test.cloudnet.io/v1/namespaces/${ns}/widgets${name ? `/${name}` : ''}`;

/** Processes whose command line mentions `dir` (etcd --data-dir, kube-apiserver --cert-dir, watchdog). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead for our purposes.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// What the shared clusters ran as; checked once they are gone. Module-level `after` hooks run in
// order, so the one at the end of this file runs after useClusters' stop().
const suiteLeftovers: { dirs: string[]; pids: number[] } = { dirs: [], pids: [] };
before(async () => {
  for (const c of await env.ready()) {
    suiteLeftovers.dirs.push(c.dir);
    suiteLeftovers.pids.push(c.etcdPid, c.apiServerPid);
  }
});

test('two clusters start independently, each with its own CRD and object', async () => {
  const clusters = env.clusters;
  assert.equal(clusters.length, 2);
  console.log(`2 clusters started in parallel in ${env.startupMs.toFixed(0)} ms`);
  assert.ok(env.startupMs < 30_000, 'clusters start in seconds');
  assert.notEqual(clusters[0].server, clusters[1].server);
  await Promise.all(clusters.map(async (c: Cluster, i) => {
    await applyManifests(c, [widgetCrd]);
    await createNamespace(c, 'apps');
    await kubeRequest(c.credentials, 'POST', widgetPath('apps'), {
      body: { apiVersion: 'test.cloudnet.io/v1', kind: 'Widget', metadata: { name: `w${i}` }, spec: { size: i + 1 } },
    });
  }));
  // Each cluster sees only its own object: separate etcds, not a shared store.
  for (const [i, c] of clusters.entries()) {
    const list = await kubeRequest<{ items: Manifest[] }>(c.credentials, 'GET', widgetPath('apps'));
    assert.deepEqual(list.items.map((w) => w.metadata.name), [`w${i}`]);
  }
});

test('an API server restart keeps the objects (etcd keeps running)', async () => {
  const [a, b] = env.clusters;
  const before = await kubeRequest<Manifest>(a.credentials, 'GET', widgetPath('apps', 'w0'));
  const oldPid = a.apiServerPid;
  const etcdPid = a.etcdPid;
  const t0 = performance.now();
  await a.restartApiServer();
  const restartMs = performance.now() - t0;
  console.log(`kube-apiserver restart: ${restartMs.toFixed(0)} ms`);
  assert.notEqual(a.apiServerPid, oldPid, 'a new kube-apiserver process');
  assert.equal(alive(oldPid), false, 'the old kube-apiserver is gone');
  assert.equal(a.etcdPid, etcdPid);
  suiteLeftovers.pids.push(a.apiServerPid);
  const afterRestart = await kubeRequest<Manifest & { spec: { size: number } }>(a.credentials, 'GET', widgetPath('apps', 'w0'));
  assert.equal(afterRestart.metadata.uid, before.metadata.uid);
  assert.equal(afterRestart.spec.size, 1);
  // The admin kubeconfig file and client-node KubeConfig still work against the new process.
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const ns = await a.kubeConfig.makeApiClient(CoreV1Api).readNamespace({ name: 'apps' });
  assert.equal(ns.metadata?.name, 'apps');
  assert.match(readFileSync(a.kubeconfigPath, 'utf8'), /client-certificate-data/);
  // The other cluster was untouched.
  await kubeRequest(b.credentials, 'GET', widgetPath('apps', 'w1'));
});

test('RBAC is enforced: a restricted user gets 403 until a Role grants access', async () => {
  const [a] = env.clusters;
  const user = await userKubeconfig(a, { user: 'system:serviceaccount:apps:operator', groups: ['system:serviceaccounts'] });
  await assert.rejects(
    kubeRequest(user.credentials, 'GET', widgetPath('apps')),
    (e: unknown) => e instanceof KubeRequestError && e.code === 403,
  );
  await applyManifests(a, [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'widget-reader', namespace: 'apps' },
      rules: [{ apiGroups: ['test.cloudnet.io'], resources: ['widgets'], verbs: ['get', 'list'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'operator-widgets', namespace: 'apps' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'widget-reader' },
      subjects: [{ kind: 'User', name: 'system:serviceaccount:apps:operator' }],
    },
  ]);
  const list = await kubeRequest<{ items: Manifest[] }>(user.credentials, 'GET', widgetPath('apps'));
  assert.deepEqual(list.items.map((w) => w.metadata.name), ['w0']);
  // Least privilege holds: reading is granted, writing and other namespaces are not.
  await assert.rejects(
    kubeRequest(user.credentials, 'DELETE', widgetPath('apps', 'w0')),
    (e: unknown) => e instanceof KubeRequestError && e.code === 403,
  );
  await assert.rejects(
    kubeRequest(user.credentials, 'GET', widgetPath('default')),
    (e: unknown) => e instanceof KubeRequestError && e.code === 403,
  );
  // The same identity works through client-node too.
  const { CustomObjectsApi } = await import('@kubernetes/client-node');
  const viaClient = await user.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
    group: 'test.cloudnet.io', version: 'v1', namespace: 'apps', plural: 'widgets', name: 'w0',
  }) as Manifest;
  assert.equal(viaClient.metadata.name, 'w0');
});

test('stop() leaves no processes and no temp dir', async () => {
  const c = await startCluster({ name: 'short-lived' });
  await c.restartApiServer();
  const pids = [c.etcdPid, c.apiServerPid];
  assert.ok(existsSync(c.dir));
  await c.stop();
  await c.stop(); // idempotent
  for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
  assert.equal(existsSync(c.dir), false);
  assert.deepEqual(processesUsing(c.dir), []);
});

const clusterModule = join(dirname(fileURLToPath(import.meta.url)), '../env/cluster.ts');

/** Starts a cluster in a child node process, which reports its dir and then meets `fate`. */
async function clusterInDoomedProcess(fate: 'throw' | 'hang'): Promise<{ dir: string; child: ReturnType<typeof spawn> }> {
  const code = [
    `const { startCluster } = await import(${JSON.stringify(clusterModule)});`,
    `const c = await startCluster({ name: 'doomed' });`,
    `console.log(JSON.stringify({ dir: c.dir }));`,
    // The crash waits for the parent's go-ahead, so the parent sees the servers running first
    // even when a loaded machine delays it by more than a few milliseconds.
    fate === 'throw' ? `process.stdin.once('data', () => { throw new Error('test crashed'); });` : `setInterval(() => {}, 1000);`,
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const dir = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"dir":"([^"]+)"\}/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (codeOrNull) => reject(new Error(`child exited (${codeOrNull}) before reporting: ${err}`)));
  });
  return { dir, child };
}

test('a test process that crashes leaves nothing behind (exit hook)', async () => {
  const { dir, child } = await clusterInDoomedProcess('throw');
  assert.ok(processesUsing(dir).length >= 2, 'etcd and kube-apiserver were running');
  const exited = new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  child.stdin?.write('crash\n');
  await exited;
  await waitFor(() => processesUsing(dir).length === 0 && !existsSync(dir), { what: 'crash cleanup' });
});

test('a SIGKILLed test process leaves nothing behind (watchdog)', async () => {
  const { dir, child } = await clusterInDoomedProcess('hang');
  assert.ok(processesUsing(dir).length >= 2, 'etcd and kube-apiserver were running');
  child.kill('SIGKILL');
  await waitFor(() => processesUsing(dir).length === 0 && !existsSync(dir), { what: 'watchdog cleanup' });
});

// Registered after useClusters' own `after`, so it runs once the shared clusters are stopped.
after(async () => {
  assert.equal(suiteLeftovers.dirs.length, 2, 'the suite recorded its clusters');
  for (const pid of suiteLeftovers.pids) assert.equal(alive(pid), false, `pid ${pid} survived the suite`);
  for (const dir of suiteLeftovers.dirs) {
    assert.equal(existsSync(dir), false, `${dir} survived the suite`);
    // The watchdog shell is SIGKILLed without waiting for it (it is detached and unref'd): on a
    // loaded machine it can still be in /proc a moment later. Bounded, so a real survivor fails.
    await waitFor(() => processesUsing(dir).length === 0, { what: `processes using ${dir} to exit`, timeoutMs: 10_000 })
      .catch(() => assert.deepEqual(processesUsing(dir), []));
  }
});
