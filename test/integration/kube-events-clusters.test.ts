// Events and remote-cluster clients against two real API servers: an Event is created and its
// repeats are folded into a series; a kubeconfig Secret in cluster A yields a working client for
// cluster B, which is rebuilt when the Secret changes; bad Secrets give typed errors that never
// echo the kubeconfig; a Secret namespace the operator cannot read costs a bounded wait, not a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useClusters, userKubeconfig } from '../env/index.ts';
import { RestartBackoff } from '../../src/kube/backoff.ts';
import { KubeClient, Resources } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { ClusterClients, ClusterClientError } from '../../src/kube/clusters.ts';
import type { KubeObject, KubeList } from '../../src/kube/rest.ts';
import { waitFor } from '../helpers/poll.ts';

const env = useClusters(2, { kubevirtCrds: false });

interface EventObj extends KubeObject {
  reason?: string;
  note?: string;
  type?: string;
  regarding?: { name?: string; kind?: string; uid?: string };
  series?: { count: number; lastObservedTime: string };
}

test('events are created for an object and repeats aggregate into a series', async () => {
  const [a] = env.clusters;
  const client = new KubeClient(a.kubeConfig);
  try {
    const cm = await client.create<KubeObject>(Resources.configMap, { kind: 'ConfigMap', metadata: { name: 'evented', namespace: 'default' } });
    const rec = new EventRecorder({ client, reportingController: 'cloudnet.io/test', reportingInstance: 'test-0' });
    await rec.record(cm, 'Normal', 'Started', 'migration started');
    for (let i = 0; i < 3; i++) rec.event(cm, 'Warning', 'TargetUnreachable', 'site-b API server unreachable');
    await rec.record(cm, 'Normal', 'Started', 'a different note is a different event');
    await rec.flush();
    const list = await client.list<EventObj>(Resources.event, 'default');
    const mine = list.items.filter((e) => e.regarding?.uid === cm.metadata?.uid);
    assert.equal(mine.length, 3, JSON.stringify(mine.map((e) => [e.reason, e.note, e.series])));
    const warn = mine.find((e) => e.reason === 'TargetUnreachable');
    assert.equal(warn?.type, 'Warning');
    assert.equal(warn?.series?.count, 3);
    assert.equal(warn?.regarding?.kind, 'ConfigMap');
    // The same Event is visible through the core v1 API, which `kubectl describe` reads.
    const core = await client.list<KubeObject & { count?: number; reason?: string }>(Resources.coreEvent, 'default', { fieldSelector: `involvedObject.uid=${cm.metadata?.uid}` });
    assert.equal(core.items.length, 3);
  } finally {
    await client.rest.close();
  }
});

test('ClusterClients builds a client for cluster B from a Secret in A and refreshes it when the Secret changes', async () => {
  const [a, b] = env.clusters;
  const local = new KubeClient(a.kubeConfig);
  const clusters = new ClusterClients({ local });
  const ns = 'cloudnet-system';
  const secret = (name: string, data: Record<string, string>) => ({
    kind: 'Secret', metadata: { name, namespace: ns }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });
  try {
    await local.create(Resources.namespace, { kind: 'Namespace', metadata: { name: ns } });
    await local.create(Resources.secret, secret('site-b', { kubeconfig: b.kubeconfigYaml }));
    const changes: string[] = [];
    clusters.onSecretChange((r) => changes.push(r.name));

    const remote = await clusters.forSecret({ namespace: ns, name: 'site-b' }, 'site-b');
    assert.equal(remote.clusterName, 'site-b');
    assert.equal(remote.rest.server, b.server);
    await remote.create(Resources.configMap, { kind: 'ConfigMap', metadata: { name: 'only-in-b', namespace: 'default' } });
    assert.ok(await remote.tryGet(Resources.configMap, 'default', 'only-in-b'));
    assert.equal(await local.tryGet(Resources.configMap, 'default', 'only-in-b'), undefined);
    assert.equal(await clusters.forSecret({ namespace: ns, name: 'site-b' }), remote, 'cached while the Secret is unchanged');

    // Rotate: point the Secret at cluster A instead.
    await local.update(Resources.secret, { ...(await local.get(Resources.secret, ns, 'site-b')), data: secret('x', { kubeconfig: a.kubeconfigYaml }).data });
    await waitFor(() => changes.includes('site-b'), { what: 'change notification' });
    const rotated = await clusters.forSecret({ namespace: ns, name: 'site-b' }, 'site-b');
    assert.notEqual(rotated, remote);
    assert.equal(rotated.rest.server, a.server);

    await assert.rejects(clusters.forSecret({ namespace: ns, name: 'nope' }), (e: unknown) => e instanceof ClusterClientError && e.reason === 'SecretNotFound');
    await local.create(Resources.secret, secret('nokey', { other: 'x' }));
    await local.create(Resources.secret, secret('garbage', { kubeconfig: 'token: s3cr3t-value\n  : : [' }));
    await waitFor(() => clusters.secretInformer(ns).getByName(ns, 'garbage') !== undefined, { what: 'secrets cached' });
    await assert.rejects(clusters.forSecret({ namespace: ns, name: 'nokey' }), (e: unknown) => e instanceof ClusterClientError && e.reason === 'KubeconfigMissing');
    await assert.rejects(clusters.forSecret({ namespace: ns, name: 'garbage' }), (e: unknown) =>
      e instanceof ClusterClientError && e.reason === 'KubeconfigInvalid' && !e.message.includes('s3cr3t'));
    const nss = await rotated.list<KubeObject>(Resources.namespace) as KubeList;
    assert.ok(nss.items.some((n) => n.metadata?.name === ns));
  } finally {
    await clusters.stop();
    await local.rest.close();
  }
});

test('ensureFinalizer/removeFinalizer, server-side apply and status patches on a real API server', async () => {
  const [a] = env.clusters;
  const client = new KubeClient(a.kubeConfig);
  try {
    const applied = await client.apply<KubeObject>(Resources.configMap, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: 'default' }, data: { a: '1' } }, { fieldManager: 'cloudnet-test' });
    assert.equal((applied.data as Record<string, string>).a, '1');
    const withF = await client.ensureFinalizer(Resources.configMap, applied, 'cloudnet.io/test');
    assert.deepEqual(withF.metadata?.finalizers, ['cloudnet.io/test']);
    assert.equal(await client.ensureFinalizer(Resources.configMap, withF, 'cloudnet.io/test'), withF, 'no-op when present');
    await assert.rejects(client.ensureFinalizer(Resources.configMap, applied, 'cloudnet.io/other'), (e: unknown) => (e as { code?: number }).code === 409, 'stale resourceVersion conflicts');
    const without = await client.removeFinalizer(Resources.configMap, withF, 'cloudnet.io/test');
    assert.equal(without.metadata?.finalizers, undefined);
    assert.equal(await client.delete(Resources.configMap, 'default', 'ssa'), true);
    assert.equal(await client.delete(Resources.configMap, 'default', 'ssa'), false);
  } finally {
    await client.rest.close();
  }
});

test('a Secret namespace the operator cannot read costs a bounded wait once, then fails at once (SecretUnreadable), and heals when access is granted', async () => {
  const [a] = env.clusters;
  const admin = new KubeClient(a.kubeConfig);
  // The operator as a user with no rights on Secrets yet (cluster A's CA signs its certificate).
  const user = 'cloudnet-operator-limited';
  const restricted = new KubeClient((await userKubeconfig(a, { user })).kubeConfig, 'restricted');
  const clusters = new ClusterClients({ local: restricted, secretSyncTimeoutMs: 1500, informerOptions: { backoff: new RestartBackoff(50, 200) } });
  const ns = 'locked-secrets';
  const ref = { namespace: ns, name: 'site-x' };
  const unreadable = (e: unknown) => e instanceof ClusterClientError && e.reason === 'SecretUnreadable' && /could not list the Secrets of namespace locked-secrets within 2s/.test(e.message);
  try {
    await admin.create(Resources.namespace, { kind: 'Namespace', metadata: { name: ns } });
    await admin.create(Resources.secret, { kind: 'Secret', metadata: { name: 'site-x', namespace: ns }, stringData: { kubeconfig: a.kubeconfigYaml } });
    let t0 = Date.now();
    await assert.rejects(clusters.forSecret(ref), unreadable);
    const first = Date.now() - t0;
    assert.ok(first >= 1000, `waited its bound first (${first} ms)`);
    t0 = Date.now();
    await assert.rejects(clusters.forSecret(ref), unreadable);
    assert.ok(Date.now() - t0 < 1000, 'then fails at once: one unreadable namespace never holds a worker again');
    // Granting list/watch lets the informer (still retrying) fill its cache: the next call works.
    const rbac = (plural: string, kind: string) => ({ group: 'rbac.authorization.k8s.io', version: 'v1', plural, kind });
    await admin.create(rbac('roles', 'Role'), { metadata: { name: 'read-secrets', namespace: ns }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }] });
    await admin.create(rbac('rolebindings', 'RoleBinding'), {
      metadata: { name: 'read-secrets', namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-secrets' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: user }],
    });
    await waitFor(async () => (await clusters.forSecret(ref).then(() => true, () => false)), { what: 'the Secret cache fills once access is granted', timeoutMs: 20_000 });
  } finally {
    await clusters.stop();
    await Promise.all([admin.rest.close(), restricted.rest.close()]);
  }
});
