// `helm install` of charts/cloudnet into a real kube-apiserver (no kubelet: pods never run, which
// is fine here), then the RBAC boundaries of the operator's ServiceAccount, checked twice: with
// `kubectl auth can-i --as=...` (SubjectAccessReview) and with real requests made as that identity.
// Finally `helm upgrade` (VM data and KubeVirt/CDI writes in rbac.vmDataNamespaces, a site
// gateway) and `helm uninstall`, which must leave the CRDs in place.
// test/integration/rbac-matrix.test.ts has the full matrix.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, userKubeconfig, type Cluster } from '../env/cluster.ts';
import { chartDir, runHelm } from '../../hack/packaging.ts';
import { canIAs, describeAccess, kubectlIn, mismatches, q, reviewAs, serviceAccountUser, type Access, type Kubectl } from './rbac-helpers.ts';

const NS = 'cloudnet-system';
const RELEASE = 'cloudnet';
const { user: SA, groups: SA_GROUPS } = serviceAccountUser(NS, RELEASE);

let cluster: Cluster;
let work: string;
let saKubeconfig: string;
let k: Kubectl;

const kubectl = (args: string[], kubeconfig?: string, input?: string) => k.run(args, kubeconfig, input);
const kubectlOk = (args: string[], kubeconfig?: string, input?: string) => k.ok(args, kubeconfig, input);
function helm(args: string[]): string {
  const r = runHelm([...args, '--kubeconfig', cluster.kubeconfigPath]);
  assert.equal(r.status, 0, `helm ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
/** SubjectAccessReview (what `kubectl auth can-i --as` sends) for all questions in one kubectl call; needs no discovery. */
const reviewAll = (questions: Access[], user = SA): boolean[] => reviewAs(k, user, SA_GROUPS, questions);
/** `kubectl auth can-i` as the operator's ServiceAccount (for kinds the server serves). */
const canI = (a: Access): boolean => canIAs(k, SA, SA_GROUPS, a);

const CN = 'cloudnet.io';
const KV = 'kubevirt.io';
const CDI = 'cdi.kubevirt.io';
const sub = (s: string) => ({ sub: s });
/** Granted with the defaults (no rbac.vmDataNamespaces): KubeVirt/CDI objects are only read. */
const NEEDED: Access[] = [
  q('watch', CN, 'wanmigrations'), q('patch', CN, 'wanmigrations', 'default', sub('status')),
  q('update', CN, 'wanmigrations', 'default', sub('finalizers')), q('list', CN, 'sites'), q('patch', CN, 'sites', '', sub('status')),
  q('list', KV, 'virtualmachineinstancemigrations'), q('watch', KV, 'virtualmachineinstancemigrations'), q('get', KV, 'virtualmachineinstancemigrations', 'default'),
  q('list', KV, 'virtualmachines'), q('watch', KV, 'virtualmachines'), q('get', KV, 'virtualmachines', 'default'),
  q('watch', KV, 'virtualmachineinstances'), q('get', KV, 'kubevirts', 'kubevirt'), q('get', CDI, 'datavolumes', 'default'),
  q('get', '', 'configmaps', 'kubevirt', { name: 'kubevirt-ca' }), q('patch', '', 'configmaps', 'kubevirt', { name: 'kubevirt-external-ca' }),
  q('create', '', 'configmaps', 'kubevirt'), q('get', '', 'persistentvolumeclaims', 'default'),
  q('list', '', 'secrets', NS), q('watch', '', 'secrets', NS), q('get', '', 'configmaps', NS),
  q('create', '', 'events', 'default'), q('patch', 'events.k8s.io', 'events', 'default'), q('get', '', 'namespaces'),
  q('get', 'coordination.k8s.io', 'leases', NS), q('create', 'coordination.k8s.io', 'leases', NS), q('update', 'coordination.k8s.io', 'leases', NS),
  q('create', 'authentication.k8s.io', 'tokenreviews'), q('create', 'authorization.k8s.io', 'subjectaccessreviews'),
];
const NOT_NEEDED: Access[] = [
  q('delete', '', 'namespaces'), q('create', '', 'namespaces'), q('create', '', 'pods', 'default'), q('create', '', 'pods', NS),
  q('watch', '', 'secrets'), q('watch', '', 'secrets', 'kube-system'), q('watch', '', 'configmaps'),
  // VM data is not granted anywhere until rbac.vmDataNamespaces names the namespaces.
  q('get', '', 'secrets', 'default'), q('list', '', 'secrets', 'default'), q('create', '', 'configmaps', 'default'), q('get', '', 'secrets', 'kube-system'),
  q('get', '', 'configmaps', 'kubevirt', { name: 'kubevirt-install-strategy' }), q('update', '', 'configmaps', 'kubevirt', { name: 'kubevirt-ca' }),
  q('create', '', 'persistentvolumeclaims', 'default'),
  q('create', CN, 'wanmigrations', 'default'), q('delete', CN, 'wanmigrations', 'default'), q('delete', CN, 'sites'),
  q('update', KV, 'virtualmachineinstances', 'default'), q('delete', KV, 'virtualmachineinstances', 'default'),
  q('patch', KV, 'kubevirts', 'kubevirt'), q('update', KV, 'virtualmachines', 'default', sub('status')),
  // KubeVirt/CDI writes, too, are granted only in rbac.vmDataNamespaces (none yet); update in none.
  q('create', KV, 'virtualmachines', 'default'), q('patch', KV, 'virtualmachines', 'default'), q('delete', KV, 'virtualmachines', 'kube-system'),
  q('create', KV, 'virtualmachines'), q('update', KV, 'virtualmachines', 'default'),
  q('create', KV, 'virtualmachineinstancemigrations', 'default'), q('delete', KV, 'virtualmachineinstancemigrations', 'default'),
  q('create', CDI, 'datavolumes', 'default'), q('delete', CDI, 'datavolumes', 'kube-system'), q('update', CDI, 'datavolumes', 'default'),
  q('create', 'coordination.k8s.io', 'leases', 'default'), q('delete', 'coordination.k8s.io', 'leases', NS),
  q('update', 'apps', 'deployments', NS), q('create', 'rbac.authorization.k8s.io', 'clusterrolebindings'),
  q('escalate', 'rbac.authorization.k8s.io', 'clusterroles'), q('bind', 'rbac.authorization.k8s.io', 'roles', NS),
  q('create', 'apiextensions.k8s.io', 'customresourcedefinitions'), q('create', '', 'serviceaccounts', NS, sub('token')),
  q('impersonate', '', 'users'), q('create', '', 'nodes'),
];

describe('helm install charts/cloudnet into a real API server', () => {
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cloudnet-helm-it-'));
    cluster = await startCluster({ name: 'helm' });
    k = kubectlIn(cluster, work);
    // KubeVirt's namespace exists before the chart (its Role for the CA bundles goes there).
    kubectlOk(['create', 'namespace', 'kubevirt']);
    // The operator's identity as a client cert: username and groups exactly as a SA token would carry.
    const sa = await userKubeconfig(cluster, { user: SA, groups: SA_GROUPS });
    saKubeconfig = join(work, 'sa.kubeconfig');
    writeFileSync(saKubeconfig, sa.kubeconfigYaml, { mode: 0o600 });
  });
  after(async () => {
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('installs CRDs, ServiceAccount, RBAC, Deployment and Service', () => {
    // The operator alone first (the site data plane needs its sites' values).
    const out = helm(['install', RELEASE, chartDir, '--namespace', NS, '--create-namespace', '--timeout', '120s', '--set', 'gateway.enabled=false']);
    assert.match(out, /STATUS: deployed/);
    assert.match(out, /CloudNet operator .* is installed in namespace cloudnet-system/, 'NOTES.txt rendered');
    assert.match(out, /NOTE: rbac.vmDataNamespaces is empty, so no VM can migrate from or into this cluster/, 'NOTES.txt says VM data and VM writes are not granted anywhere yet');
    kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/wanmigrations.cloudnet.io', 'crd/sites.cloudnet.io']);
    const crd = JSON.parse(kubectlOk(['get', 'crd', 'wanmigrations.cloudnet.io', '-o', 'json'])) as { metadata: { annotations: Record<string, string> } };
    assert.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep');
    kubectlOk(['-n', NS, 'get', `serviceaccount/${RELEASE}`, `role/${RELEASE}`, `rolebinding/${RELEASE}`, `service/${RELEASE}-metrics`, `poddisruptionbudget/${RELEASE}`]);
    kubectlOk(['get', `clusterrole/${RELEASE}`, `clusterrolebinding/${RELEASE}`, `clusterrole/${RELEASE}-editor`, `clusterrole/${RELEASE}-viewer`,
      `clusterrole/${RELEASE}-metrics-auth`, `clusterrolebinding/${RELEASE}-metrics-auth`, `clusterrole/${RELEASE}-metrics-reader`]);
    kubectlOk(['-n', 'kubevirt', 'get', `role/${RELEASE}-kubevirt-ca`, `rolebinding/${RELEASE}-kubevirt-ca`]);
    const dep = JSON.parse(kubectlOk(['-n', NS, 'get', `deployment/${RELEASE}`, '-o', 'json'])) as {
      spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } };
    };
    assert.equal(dep.spec.replicas, 2);
    assert.equal(dep.spec.template.spec.serviceAccountName, RELEASE);
    assert.ok(dep.spec.template.spec.containers[0].args.includes('--leader-elect'));
  });

  it('grants the ServiceAccount what the operator needs and nothing else (SubjectAccessReview)', () => {
    const questions = [...NEEDED, ...NOT_NEEDED];
    assert.deepEqual(mismatches(questions, [...NEEDED.map(() => true), ...NOT_NEEDED.map(() => false)], reviewAll(questions), 'SubjectAccessReview'), []);
  });

  it('agrees with kubectl auth can-i --as for the kinds this server serves', () => {
    const served = (a: Access) => a.group === '' || a.group === CN || a.group.endsWith('k8s.io');
    for (const a of NEEDED.filter(served)) assert.equal(canI(a), true, `can-i ${describeAccess(a)}`);
    for (const a of NOT_NEEDED.filter(served)) assert.equal(canI(a), false, `can-i ${describeAccess(a)}`);
  });

  it('enforces the same boundaries on real requests made as the ServiceAccount', () => {
    kubectlOk(['apply', '-f', '-'], undefined, JSON.stringify({
      apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', metadata: { name: 'rbac-probe', namespace: 'default' },
      spec: { vmName: 'vm-a', targetSite: 'site-b', targetNamespace: 'default' },
    }));
    kubectlOk(['-n', 'default', 'get', 'wanmigration/rbac-probe'], saKubeconfig);
    kubectlOk(['-n', 'default', 'patch', 'wanmigration/rbac-probe', '--subresource=status', '--type=merge',
      '-p', JSON.stringify({ status: { observedGeneration: 1, phase: 'Pending' } })], saKubeconfig);
    const status = JSON.parse(kubectlOk(['-n', 'default', 'get', 'wanmigration/rbac-probe', '-o', 'jsonpath={.status}'])) as { phase: string };
    assert.equal(status.phase, 'Pending');
    kubectlOk(['-n', NS, 'create', 'secret', 'generic', 'site-b-kubeconfig', '--from-literal=kubeconfig=x']);
    kubectlOk(['-n', NS, 'get', 'secrets'], saKubeconfig);
    for (const args of [['delete', 'namespace', 'default'], ['-n', 'default', 'run', 'p', '--image=x'], ['get', 'secrets', '-A', '--watch-only', '--request-timeout=5s'],
      ['-n', 'default', 'delete', 'wanmigration/rbac-probe']]) {
      const r = kubectl(args, saKubeconfig);
      assert.notEqual(r.status, 0, `kubectl ${args.join(' ')} succeeded as ${SA}`);
      assert.match(r.stderr, /forbidden/i, `kubectl ${args.join(' ')}: ${r.stderr}`);
    }
  });

  it('upgrades: the source side\'s Secret/ConfigMap reads and KubeVirt writes in rbac.vmDataNamespaces only, site gateway added', () => {
    kubectlOk(['create', 'namespace', 'vms']);
    kubectlOk(['create', 'namespace', 'vms-b']);
    const upgraded = helm(['upgrade', RELEASE, chartDir, '--namespace', NS, '--set', 'replicaCount=3', '--set', 'rbac.vmDataNamespaces={vms,vms-b}', '--timeout', '120s',
      '--set', 'networkPolicy.enabled=true,networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring',
      '--set', 'gateway.enabled=true,gateway.relay.enabled=false,routeAgent.enabled=false,gateway.site=site-a,gateway.peers[0].site=site-b,gateway.peers[0].interface=cn-b,gateway.peers[0].tunnelAddress=198.18.10.1/24,gateway.peers[0].kubeconfigSecret=site-b-gateway-kubeconfig']);
    assert.equal(kubectlOk(['-n', NS, 'get', `deployment/${RELEASE}`, '-o', 'jsonpath={.spec.replicas}']), '3');
    assert.match(upgraded, /create token cloudnet-peer-gateway --duration=720h/, 'NOTES.txt names the peer gateway identity');
    kubectlOk(['-n', NS, 'get', `networkpolicy/${RELEASE}`]);
    kubectlOk(['get', `validatingadmissionpolicy/${RELEASE}-gateway-creates`, `validatingadmissionpolicybinding/${RELEASE}-kubevirt-ca-creates`]);
    assert.match(upgraded, /site-b: site-b-gateway-kubeconfig/, 'NOTES.txt names each peer\'s credential Secret');
    const granted = [q('get', '', 'secrets', 'vms'), q('get', '', 'configmaps', 'vms-b'), q('get', '', 'secrets', 'vms-b'),
      q('patch', '', 'configmaps', 'kubevirt', { name: 'kubevirt-external-ca' }), q('watch', '', 'secrets', NS), q('get', '', 'configmaps', NS),
      q('patch', KV, 'virtualmachines', 'vms'), q('delete', KV, 'virtualmachines', 'vms-b'), q('create', KV, 'virtualmachineinstancemigrations', 'vms'),
      q('delete', KV, 'virtualmachineinstancemigrations', 'vms-b'), q('list', KV, 'virtualmachines')];
    const refused = [q('list', '', 'secrets'), q('list', '', 'secrets', 'default'), q('get', '', 'secrets', 'kube-system'), q('create', '', 'configmaps', 'default'),
      q('update', '', 'secrets', 'vms'), q('watch', '', 'configmaps', 'vms-b'), q('get', '', 'secrets', 'kubevirt'),
      q('patch', KV, 'virtualmachines', 'default'), q('create', KV, 'virtualmachineinstancemigrations', 'kube-system'), q('create', CDI, 'datavolumes', 'default'),
      q('update', KV, 'virtualmachines', 'vms'), q('create', '', 'pods', 'vms'),
      // The target side's verbs there are the peer identity's (rbac.peer), not this account's.
      q('list', '', 'secrets', 'vms'), q('create', '', 'secrets', 'vms'), q('delete', '', 'configmaps', 'vms-b'), q('create', KV, 'virtualmachines', 'vms')];
    const answers = reviewAll([...granted, ...refused]);
    assert.deepEqual(answers, [...granted.map(() => true), ...refused.map(() => false)],
      [...granted, ...refused].map((a, i) => `${describeAccess(a)}: ${answers[i]}`).join('\n'));
    // The site gateway's own ServiceAccount: its key Secret (by name) and ConfigMaps here, Site
    // reads, Site Events, the reviews behind its authenticated /metrics. No other Secret: the Site
    // kubeconfig Secrets (the operator's peer credential) are out of its reach.
    kubectlOk(['-n', NS, 'get', `deployment/${RELEASE}-gateway-site-b`, `serviceaccount/${RELEASE}-gateway`, `serviceaccount/${RELEASE}-peer-gateway`]);
    const gwGranted = [q('get', CN, 'sites'), q('create', '', 'secrets', NS), q('get', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }),
      q('update', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }), q('patch', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' }), q('create', '', 'events', 'default'),
      q('create', 'authentication.k8s.io', 'tokenreviews'), q('create', 'authorization.k8s.io', 'subjectaccessreviews')];
    const gwRefused = [q('list', CN, 'sites'), q('patch', CN, 'sites', '', sub('status')), q('get', '', 'secrets', 'default'), q('list', '', 'secrets'),
      q('get', '', 'secrets', NS, { name: 'site-b-kubeconfig' }), q('get', '', 'secrets', NS), q('list', '', 'secrets', NS), q('watch', '', 'secrets', NS),
      q('update', '', 'secrets', NS, { name: 'site-b-kubeconfig' }), q('get', '', 'secrets', NS, { name: `${RELEASE}-relay-api` }), q('patch', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-c' }),
      q('create', '', 'configmaps', 'kubevirt'), q('create', '', 'events', NS), q('create', '', 'pods', NS), q('get', KV, 'virtualmachines', 'default')];
    const gwAnswers = reviewAll([...gwGranted, ...gwRefused], `system:serviceaccount:${NS}:${RELEASE}-gateway`);
    assert.deepEqual(gwAnswers, [...gwGranted.map(() => true), ...gwRefused.map(() => false)],
      [...gwGranted, ...gwRefused].map((a, i) => `gateway ${describeAccess(a)}: ${gwAnswers[i]}`).join('\n'));
    // A peer site's gateway, here: the link state published for it, by name, and nothing else.
    const pgGranted = [q('get', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' })];
    const pgRefused = [q('get', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-c' }), q('list', '', 'configmaps', NS), q('watch', '', 'configmaps', NS),
      q('patch', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' }), q('get', '', 'secrets', NS, { name: 'site-b-kubeconfig' }), q('get', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }),
      q('get', CN, 'sites'), q('create', KV, 'virtualmachines', 'vms'), q('get', KV, 'virtualmachines', 'vms'), q('create', 'authentication.k8s.io', 'tokenreviews')];
    const pgAnswers = reviewAll([...pgGranted, ...pgRefused], `system:serviceaccount:${NS}:${RELEASE}-peer-gateway`);
    assert.deepEqual(pgAnswers, [...pgGranted.map(() => true), ...pgRefused.map(() => false)],
      [...pgGranted, ...pgRefused].map((a, i) => `peer gateway ${describeAccess(a)}: ${pgAnswers[i]}`).join('\n'));
    const r = kubectl(['get', 'secrets', '-A'], saKubeconfig);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /forbidden/i);
  });

  it('keeps the CRDs (and their objects) on uninstall', () => {
    const out = helm(['uninstall', RELEASE, '--namespace', NS, '--timeout', '120s']);
    assert.match(out, /kept due to the resource policy/);
    assert.notEqual(kubectl(['-n', NS, 'get', `deployment/${RELEASE}`]).status, 0, 'Deployment removed');
    assert.notEqual(kubectl(['get', `clusterrole/${RELEASE}`]).status, 0, 'ClusterRole removed');

    assert.notEqual(kubectl(['-n', 'vms', 'get', `role/${RELEASE}-vmdata-source`]).status, 0, 'vmdata-source Role removed');
    assert.notEqual(kubectl(['-n', 'kubevirt', 'get', `role/${RELEASE}-kubevirt-ca`]).status, 0, 'kubevirt-ca Role removed');
    assert.notEqual(kubectl(['-n', 'default', 'get', `role/${RELEASE}-gateway-events`]).status, 0, 'gateway events Role removed');
    kubectlOk(['get', 'crd', 'wanmigrations.cloudnet.io', 'sites.cloudnet.io']);
    kubectlOk(['-n', 'default', 'get', 'wanmigration/rbac-probe']);
  });
});
