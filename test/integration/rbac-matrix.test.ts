// The chart's RBAC on a real kube-apiserver: `helm template` (rbac.vmDataNamespaces={vms}) is
// applied, then the operator's ServiceAccount is asked a matrix of what it CAN and CANNOT do, three
// ways that must agree (SelfSubjectAccessReview with a real token for the ServiceAccount,
// SubjectAccessReview by the admin, `kubectl auth can-i --as=system:serviceaccount:...`), then a
// few real requests with that token. Then the documented opt-in rbac.clusterWideVMData, and the
// receiving side: the identity a peer site's operator uses here (rbac.peer).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, type Cluster } from '../env/cluster.ts';
import { installKubevirtCrds } from '../env/manifests.ts';
import { helmTemplate, OPERATOR_ONLY } from '../../hack/packaging.ts';
import {
  canIAs, kubectlIn, mismatches, q, reviewAs, selfReview, serviceAccountUser, tokenKubeconfig, type Access, type Kubectl,
} from './rbac-helpers.ts';

const NS = 'cloudnet-system';
const RELEASE = 'cloudnet';
const SA = serviceAccountUser(NS, RELEASE);
const CN = 'cloudnet.io';
const KV = 'kubevirt.io';
const CDI = 'cdi.kubevirt.io';
const RBAC = 'rbac.authorization.k8s.io';
const CA = { name: 'kubevirt-ca' };
const EXT_CA = { name: 'kubevirt-external-ca' };

/** What the operator needs and is granted with rbac.vmDataNamespaces={vms}. */
const CAN: Access[] = [
  // Release namespace: the Sites' kubeconfig Secrets (informer), the gateways' state, the Lease.
  q('get', '', 'secrets', NS), q('list', '', 'secrets', NS), q('watch', '', 'secrets', NS), q('get', '', 'configmaps', NS),
  q('create', 'coordination.k8s.io', 'leases', NS), q('update', 'coordination.k8s.io', 'leases', NS),
  // KubeVirt's namespace: the CA bundle exchange, by name where RBAC allows it.
  q('get', '', 'configmaps', 'kubevirt', CA), q('get', '', 'configmaps', 'kubevirt', EXT_CA), q('patch', '', 'configmaps', 'kubevirt', EXT_CA),
  q('create', '', 'configmaps', 'kubevirt'),
  // A listed VM namespace: copies of what VMs reference, cleanup by label.
  q('get', '', 'secrets', 'vms'), q('list', '', 'secrets', 'vms'), q('create', '', 'secrets', 'vms'), q('delete', '', 'secrets', 'vms'),
  q('get', '', 'configmaps', 'vms'), q('list', '', 'configmaps', 'vms'), q('create', '', 'configmaps', 'vms'), q('delete', '', 'configmaps', 'vms'),
  // KubeVirt/CDI objects, PVC sizes, namespaces, Events, our APIs.
  q('create', KV, 'virtualmachines', 'vms'), q('delete', KV, 'virtualmachines', 'vms'), q('create', KV, 'virtualmachineinstancemigrations', 'vms'),
  q('watch', KV, 'virtualmachineinstances'), q('list', KV, 'kubevirts', 'kubevirt'), q('create', CDI, 'datavolumes', 'vms'),
  q('get', '', 'persistentvolumeclaims', 'vms'), q('get', '', 'namespaces'), q('create', '', 'events', 'vms'),
  q('patch', CN, 'wanmigrations', 'vms', { sub: 'status' }), q('watch', CN, 'sites'),
  // Secure metrics: reviews of scrapers' tokens.
  q('create', 'authentication.k8s.io', 'tokenreviews'), q('create', 'authorization.k8s.io', 'subjectaccessreviews'),
];

const CANNOT: Access[] = [
  // Secrets and ConfigMaps outside the named namespaces.
  q('get', '', 'secrets', 'kube-system'), q('list', '', 'secrets', 'kube-system'), q('get', '', 'configmaps', 'kube-system'),
  q('list', '', 'secrets'), q('watch', '', 'secrets'), q('list', '', 'configmaps'),
  q('get', '', 'secrets', 'other'), q('create', '', 'secrets', 'other'), q('get', '', 'configmaps', 'other'), q('create', '', 'configmaps', 'other'),
  // More than needed inside them.
  q('watch', '', 'secrets', 'vms'), q('update', '', 'secrets', 'vms'), q('patch', '', 'secrets', 'vms'), q('watch', '', 'configmaps', 'vms'),
  q('create', '', 'secrets', NS), q('update', '', 'secrets', NS), q('delete', '', 'secrets', NS), q('list', '', 'configmaps', NS),
  q('get', '', 'configmaps', 'kubevirt'), q('get', '', 'configmaps', 'kubevirt', { name: 'kubevirt-install-strategy' }),
  q('patch', '', 'configmaps', 'kubevirt', CA), q('update', '', 'configmaps', 'kubevirt', EXT_CA), q('delete', '', 'configmaps', 'kubevirt', EXT_CA),
  q('list', '', 'configmaps', 'kubevirt'), q('get', '', 'secrets', 'kubevirt'),
  // Cluster administration and privilege escalation.
  q('delete', '', 'nodes'), q('get', '', 'nodes'), q('delete', '', 'namespaces'), q('create', '', 'namespaces'),
  q('create', RBAC, 'clusterrolebindings'), q('create', RBAC, 'rolebindings', 'vms'), q('create', RBAC, 'roles', 'vms'),
  q('escalate', RBAC, 'clusterroles'), q('bind', RBAC, 'clusterroles'), q('impersonate', '', 'users'), q('impersonate', '', 'serviceaccounts', NS),
  q('create', '', 'serviceaccounts', NS, { sub: 'token' }), q('create', '', 'pods', 'vms'), q('create', '', 'pods', 'vms', { sub: 'exec' }),
  q('create', 'apiextensions.k8s.io', 'customresourcedefinitions'), q('create', 'certificates.k8s.io', 'certificatesigningrequests'),
  q('patch', KV, 'kubevirts', 'kubevirt'), q('update', KV, 'virtualmachineinstances', 'vms'), q('delete', CN, 'wanmigrations', 'vms'),
];

let cluster: Cluster;
let work: string;
let k: Kubectl;
let saToken: { token: string; path: string };

function applyChart(set: string[]): void {
  k.ok(['apply', '-f', '-'], undefined, helmTemplate(RELEASE, NS, [...OPERATOR_ONLY, ...set])); // the operator's RBAC (the site data plane has its own)
}

describe('chart RBAC on a real API server: the operator ServiceAccount\'s access matrix', () => {
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cloudnet-rbac-it-'));
    cluster = await startCluster({ name: 'rbac' });
    k = kubectlIn(cluster, work);
    for (const ns of [NS, 'kubevirt', 'vms', 'other']) k.ok(['create', 'namespace', ns]);
    await installKubevirtCrds(cluster); // so that `kubectl auth can-i` resolves the KubeVirt kinds
    applyChart(['rbac.vmDataNamespaces={vms}']);
    k.ok(['wait', '--for=condition=Established', '--timeout=60s', 'crd/wanmigrations.cloudnet.io', 'crd/sites.cloudnet.io']);
    saToken = tokenKubeconfig(k, cluster, work, NS, RELEASE);
  });
  after(async () => {
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('applies the rendered objects, Roles in exactly the release, KubeVirt and listed namespaces', () => {
    const roles = k.ok(['get', 'roles', '-A', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}']);
    assert.deepEqual(roles.split('\n').filter(Boolean).sort(), [`${NS}/${RELEASE}`, `kubevirt/${RELEASE}-kubevirt-ca`, `vms/${RELEASE}-vmdata`]);
  });

  it('SelfSubjectAccessReview with the ServiceAccount\'s own token: every CAN allowed, every CANNOT denied', () => {
    const questions = [...CAN, ...CANNOT];
    const expected = [...CAN.map(() => true), ...CANNOT.map(() => false)];
    assert.deepEqual(mismatches(questions, expected, selfReview(k, saToken.path, questions), 'SelfSubjectAccessReview'), []);
    // The token really is the ServiceAccount (not the admin): it is refused what the admin may do.
    const who = JSON.parse(k.ok(['auth', 'whoami', '-o', 'json'], saToken.path)) as { status: { userInfo: { username: string; groups: string[] } } };
    assert.equal(who.status.userInfo.username, SA.user);
    assert.deepEqual([...who.status.userInfo.groups].sort(), [...SA.groups].sort());
  });

  it('SubjectAccessReview and kubectl auth can-i --as agree', () => {
    const questions = [...CAN, ...CANNOT];
    const expected = [...CAN.map(() => true), ...CANNOT.map(() => false)];
    assert.deepEqual(mismatches(questions, expected, reviewAs(k, SA.user, SA.groups, questions), 'SubjectAccessReview'), []);
    assert.deepEqual(mismatches(questions, expected, questions.map((a) => canIAs(k, SA.user, SA.groups, a)), 'kubectl auth can-i --as'), []);
  });

  it('enforces it on real requests made with the token', () => {
    k.ok(['-n', 'kube-system', 'create', 'secret', 'generic', 'bootstrap-like', '--from-literal=token=x']);
    k.ok(['-n', 'kubevirt', 'create', 'configmap', 'kubevirt-ca', '--from-literal=ca-bundle=x']);
    k.ok(['-n', 'kubevirt', 'create', 'configmap', 'kubevirt-install-strategy', '--from-literal=x=y']);
    k.ok(['-n', 'vms', 'create', 'secret', 'generic', 'cloud-init', '--from-literal=userdata=x']);
    const as = (args: string[]) => k.run(args, saToken.path);
    const forbidden = (args: string[]) => {
      const r = as(args);
      assert.notEqual(r.status, 0, `kubectl ${args.join(' ')} succeeded with the operator's token`);
      assert.match(r.stderr, /forbidden/i, `kubectl ${args.join(' ')}: ${r.stderr}`);
    };
    assert.equal(as(['-n', 'vms', 'get', 'secret', 'cloud-init', '-o', 'name']).stdout.trim(), 'secret/cloud-init');
    assert.equal(as(['-n', 'kubevirt', 'get', 'configmap', 'kubevirt-ca', '-o', 'name']).stdout.trim(), 'configmap/kubevirt-ca');
    assert.equal(as(['-n', 'kubevirt', 'create', 'configmap', 'kubevirt-external-ca', '--from-literal=ca-bundle=']).status, 0);
    assert.equal(as(['-n', 'kubevirt', 'patch', 'configmap', 'kubevirt-external-ca', '--type=merge', '-p', '{"data":{"ca-bundle":"y"}}']).status, 0);
    forbidden(['-n', 'kube-system', 'get', 'secret', 'bootstrap-like']);
    forbidden(['get', 'secrets', '-A']);
    forbidden(['-n', 'kubevirt', 'get', 'configmap', 'kubevirt-install-strategy']);
    forbidden(['-n', 'kubevirt', 'patch', 'configmap', 'kubevirt-ca', '--type=merge', '-p', '{"data":{"ca-bundle":"evil"}}']);
    forbidden(['-n', 'other', 'create', 'secret', 'generic', 'x', '--from-literal=a=b']);
    forbidden(['create', 'clusterrolebinding', 'grab', '--clusterrole=cluster-admin', `--serviceaccount=${NS}:${RELEASE}`]);
    forbidden(['delete', 'namespace', 'other']);
  });

  it('rbac.peer: the peer site\'s identity may receive a VM into a listed namespace, nothing of this site\'s own', () => {
    applyChart(['rbac.vmDataNamespaces={vms}', 'rbac.peer.enabled=true']);
    const peer = tokenKubeconfig(k, cluster, work, NS, `${RELEASE}-peer`);
    const can = [
      q('get', '', 'namespaces', '', { name: 'vms' }), q('list', KV, 'kubevirts', 'kubevirt'),
      q('create', KV, 'virtualmachines', 'vms'), q('list', KV, 'virtualmachines', 'vms'), q('delete', KV, 'virtualmachines', 'vms'), q('get', KV, 'virtualmachineinstances', 'vms'),
      q('create', KV, 'virtualmachineinstancemigrations', 'vms'), q('delete', KV, 'virtualmachineinstancemigrations', 'vms'),
      q('create', CDI, 'datavolumes', 'vms'), q('list', CDI, 'datavolumes', 'vms'),
      q('create', '', 'secrets', 'vms'), q('list', '', 'configmaps', 'vms'), q('delete', '', 'secrets', 'vms'),
      q('get', '', 'configmaps', 'kubevirt', CA), q('patch', '', 'configmaps', 'kubevirt', EXT_CA), q('create', '', 'configmaps', 'kubevirt'),
    ];
    const cannot = [
      // This site's own secrets (its Site kubeconfigs) and objects.
      q('get', '', 'secrets', NS), q('list', '', 'secrets', NS), q('get', '', 'configmaps', NS), q('list', CN, 'sites'), q('get', CN, 'wanmigrations', 'vms'),
      q('create', 'coordination.k8s.io', 'leases', NS), q('create', 'authentication.k8s.io', 'tokenreviews'),
      // Outside the listed namespaces, and more than receiving needs.
      q('get', '', 'secrets', 'other'), q('get', '', 'secrets', 'kube-system'), q('list', '', 'secrets'),
      q('patch', KV, 'virtualmachines', 'vms'), q('update', KV, 'virtualmachineinstances', 'vms'), q('patch', KV, 'kubevirts', 'kubevirt'),
      q('create', '', 'pods', 'vms'), q('create', '', 'namespaces'), q('create', RBAC, 'rolebindings', 'vms'), q('patch', '', 'configmaps', 'kubevirt', CA),
    ];
    const questions = [...can, ...cannot];
    const expected = [...can.map(() => true), ...cannot.map(() => false)];
    assert.deepEqual(mismatches(questions, expected, selfReview(k, peer.path, questions), 'peer SelfSubjectAccessReview'), []);
    const { user, groups } = serviceAccountUser(NS, `${RELEASE}-peer`);
    assert.deepEqual(mismatches(questions, expected, questions.map((a) => canIAs(k, user, groups, a)), 'peer kubectl auth can-i --as'), []);
    const r = k.run(['-n', NS, 'get', 'secrets'], peer.path);
    assert.match(r.stderr, /forbidden/i, 'the peer cannot read this site\'s kubeconfig Secrets');
  });

  it('rbac.clusterWideVMData=true (explicit opt-in) grants VM data in every namespace, and nothing more', () => {
    const opened = [q('get', '', 'secrets', 'other'), q('create', '', 'configmaps', 'other'), q('list', '', 'secrets'), q('get', '', 'secrets', 'kube-system')];
    const stillClosed = [q('watch', '', 'secrets'), q('update', '', 'secrets', 'other'), q('patch', '', 'configmaps', 'kube-system'),
      q('patch', '', 'configmaps', 'kubevirt', CA), q('create', RBAC, 'clusterrolebindings')];
    const questions = [...opened, ...stillClosed];
    applyChart(['rbac.vmDataNamespaces={vms}', 'rbac.clusterWideVMData=true']);
    assert.deepEqual(mismatches(questions, [...opened.map(() => true), ...stillClosed.map(() => false)], selfReview(k, saToken.path, questions), 'opted in'), []);
    applyChart(['rbac.vmDataNamespaces={vms}']);
    assert.deepEqual(mismatches(questions, questions.map(() => false), selfReview(k, saToken.path, questions), 'default again'), []);
  });
});
