// Site controller on real API servers: a reachable site is Ready (and says what was measured),
// bad credentials give a reason and an Event, and fixing the Secret heals the Site.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import yaml from 'js-yaml';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Site } from '../../src/api/site.ts';
import { PEER_CLUSTER_PERMISSIONS } from '../../src/api/peer-permissions.ts';
import { userKubeconfig } from '../env/index.ts';
import { ensure, OPERATOR_NS, useOperatorBed, waitForEvent, type Bed } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
useOperatorBed((b) => { bed = b; });

const getSite = async (name: string) => (await bed.src.tryGet(Res.site, undefined, name)) as unknown as Site | undefined;

function waitForSite(name: string, status: string, reason: string): Promise<Site> {
  return waitFor(async () => {
    const s = await getSite(name);
    const c = findCondition(s?.status?.conditions, 'Ready');
    return c?.status === status && c.reason === reason ? s : undefined;
  }, { what: `Site ${name} Ready=${status} (${reason})`, timeoutMs: 15000 });
}

describe('Site', () => {
  test('the sample Site becomes Ready; without a link provider LinkReady says only the API was checked', async () => {
    const s = await waitForSite('site-b', 'True', 'Ready');
    const link = findCondition(s.status?.conditions, 'LinkReady');
    assert.equal(link?.status, 'True');
    assert.equal(link?.reason, 'ClusterAPIReachable');
    assert.match(link?.message ?? '', /no link provider configured/);
    assert.ok((s.status?.rttMs ?? -1) >= 0);
    assert.ok(s.status?.lastProbeTime);
    assert.equal(s.status?.observedGeneration, s.metadata.generation);
  });

  test('a missing kubeconfig Secret → KubeconfigSecretNotFound + Event; creating it heals the Site', async () => {
    await ensure(bed.src, Res.site, { metadata: { name: 'site-late' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'late-kubeconfig' } } });
    await waitForSite('site-late', 'False', 'KubeconfigSecretNotFound');
    await waitForEvent(bed.src, 'default', 'site-late', 'KubeconfigSecretNotFound');
    await ensure(bed.src, Res.secret, { metadata: { name: 'late-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: bed.b.kubeconfigYaml } });
    await waitForSite('site-late', 'True', 'Ready');
    await waitForEvent(bed.src, 'default', 'site-late', 'Ready');
  });

  test('an invalid kubeconfig → KubeconfigInvalid; rotating the Secret to a valid one heals the Site', async () => {
    await ensure(bed.src, Res.secret, { metadata: { name: 'rot-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: 'nope: [' } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-rot' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'rot-kubeconfig' } } });
    await waitForSite('site-rot', 'False', 'KubeconfigInvalid');
    await bed.src.patchMerge(Res.secret, OPERATOR_NS, 'rot-kubeconfig', { stringData: { kubeconfig: bed.b.kubeconfigYaml } });
    await waitForSite('site-rot', 'True', 'Ready');
  });

  test('an unreachable API server → ClusterUnreachable', async () => {
    const kc = bed.b.kubeconfigYaml.replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1');
    await ensure(bed.src, Res.secret, { metadata: { name: 'down-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: kc } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-down' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'down-kubeconfig' } } });
    const s = await waitForSite('site-down', 'False', 'ClusterUnreachable');
    assert.equal(findCondition(s.status?.conditions, 'LinkReady')?.status, 'False');
  });

  test('a wrong CA in the kubeconfig → ClusterUnreachable naming certificate-authority-data, not a Node.js flag', async () => {
    // Cluster b's kubeconfig with cluster a's CA in place of its own.
    const doc = yaml.load(bed.b.kubeconfigYaml) as { clusters: { cluster: Record<string, string> }[] };
    assert.notEqual(bed.a.ca.certPem, bed.b.ca.certPem);
    doc.clusters[0].cluster['certificate-authority-data'] = Buffer.from(bed.a.ca.certPem).toString('base64');
    const kc = yaml.dump(doc);
    await ensure(bed.src, Res.secret, { metadata: { name: 'wrongca-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: kc } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-wrongca' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'wrongca-kubeconfig' } } });
    const s = await waitForSite('site-wrongca', 'False', 'ClusterUnreachable');
    const msg = findCondition(s.status?.conditions, 'Ready')?.message ?? '';
    assert.match(msg, /not signed by the certificate authority in the kubeconfig \(certificate-authority-data\)/);
    assert.doesNotMatch(msg, /Node\.js|--use-system-ca/);
  });

  test('credentials without the rights the operator needs → Ready=False PeerPermissionsMissing naming them; granting exactly the documented list heals it', async () => {
    const user = 'cloudnet-peer-limited';
    const creds = await userKubeconfig(bed.b, { user });
    await ensure(bed.src, Res.secret, { metadata: { name: 'limited-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: creds.kubeconfigYaml } });
    // The target namespace rights are asked where the Site accepts VMs, never across all namespaces.
    await ensure(bed.dst, Res.namespace, { metadata: { name: 'limited-vms' } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-limited' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'limited-kubeconfig' }, allowedNamespaces: ['limited-vms'] } });
    const s = await waitForSite('site-limited', 'False', 'PeerPermissionsMissing');
    const msg = findCondition(s.status?.conditions, 'Ready')?.message ?? '';
    assert.match(msg, /^the credentials in Secret cloudnet-system\/limited-kubeconfig lack rights the operator needs on https:\/\/127\.0\.0\.1:\d+: namespaces \(get\); /);
    assert.match(msg, /virtualmachines\.kubevirt\.io \(get, list, watch, create, delete\) in namespace limited-vms/);
    assert.doesNotMatch(msg, /in all namespaces/);
    assert.match(msg, /configmaps\/kubevirt-external-ca \(get, list, watch, patch\) in namespace kubevirt/);
    // The API itself answered: LinkReady (API only, no link provider here) stays True.
    assert.equal(findCondition(s.status?.conditions, 'LinkReady')?.status, 'True');
    await waitForEvent(bed.src, 'default', 'site-limited', 'PeerPermissionsMissing');
    // Grant what src/api/peer-permissions.ts lists, and nothing else: the Site becomes Ready.
    const rbac = (plural: string, kind: string) => ({ group: 'rbac.authorization.k8s.io', version: 'v1', plural, kind });
    const rules = (scopes: string[]) => PEER_CLUSTER_PERMISSIONS.filter((p) => scopes.includes(p.scope)).map((p) => ({ apiGroups: [p.group], resources: [p.resource], verbs: [...p.verbs], ...(p.names ? { resourceNames: [...p.names] } : {}) }));
    const subjects = [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: user }];
    await ensure(bed.dst, rbac('clusterroles', 'ClusterRole'), { metadata: { name: 'cloudnet-peer' }, rules: rules(['Cluster']) });
    await ensure(bed.dst, rbac('clusterrolebindings', 'ClusterRoleBinding'), { metadata: { name: 'cloudnet-peer' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cloudnet-peer' }, subjects });
    for (const [namespace, scope] of [['kubevirt', 'KubeVirtNamespace'], ['limited-vms', 'TargetNamespace']]) {
      await ensure(bed.dst, rbac('roles', 'Role'), { metadata: { name: 'cloudnet-peer', namespace }, rules: rules([scope]) });
      await ensure(bed.dst, rbac('rolebindings', 'RoleBinding'), { metadata: { name: 'cloudnet-peer', namespace }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cloudnet-peer' }, subjects });
    }
    const ready = await waitForSite('site-limited', 'True', 'Ready');
    assert.match(findCondition(ready.status?.conditions, 'Ready')?.message ?? '', /the credentials hold every right the operator needs there/);
  });

  test('a Site gets the in-use finalizer', async () => {
    await waitFor(async () => ((await getSite('site-b'))?.metadata.finalizers ?? []).includes('cloudnet.io/site-in-use'), { what: 'site-b finalizer' });
  });
});
