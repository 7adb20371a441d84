// The chart's RBAC on a real kube-apiserver: `helm template` (rbac.vmDataNamespaces={vms}) is
// applied, then the operator's ServiceAccount is asked a matrix of what it CAN and CANNOT do, three
// ways that must agree (SelfSubjectAccessReview with a real token for the ServiceAccount,
// SubjectAccessReview by the admin, `kubectl auth can-i --as=system:serviceaccount:...`), then a
// few real requests with that token. Then the documented opt-in rbac.clusterWideVMData, the
// receiving side: the identity a peer site's operator uses here (rbac.peer), and the storage
// agents' Pod rights. KubeVirt/CDI objects are read cluster-wide and written only in
// rbac.vmDataNamespaces (everywhere only with the opt-in), by the operator and the peer alike.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, type Cluster } from '../env/cluster.ts';
import { installKubevirtCrds } from '../env/manifests.ts';
import { helmTemplate, OPERATOR_ONLY } from '../../hack/packaging.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { kubeConfigFromString } from '../../src/kube/clusters.ts';
import { deniedAccess } from '../../src/controller/site/permissions.ts';
import { sourceAccessChecks } from '../../src/controller/source-access.ts';
import { describeVerbOn } from '../../src/api/peer-permissions.ts';
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
  // A listed VM namespace, the source side: read what VMs reference (the copies are made in the
  // target cluster, by the peer identity), stop (patch) or delete the source VM, the source VMIM.
  q('get', '', 'secrets', 'vms'), q('get', '', 'configmaps', 'vms'),
  q('patch', KV, 'virtualmachines', 'vms'), q('delete', KV, 'virtualmachines', 'vms'),
  q('create', KV, 'virtualmachineinstancemigrations', 'vms'), q('delete', KV, 'virtualmachineinstancemigrations', 'vms'),
  // KubeVirt/CDI objects read everywhere (cluster-wide informers), PVC sizes, namespaces, Events, our APIs.
  q('get', KV, 'virtualmachines', 'other'), q('list', KV, 'virtualmachines'), q('watch', KV, 'virtualmachines'),
  q('list', KV, 'virtualmachineinstancemigrations'), q('watch', KV, 'virtualmachineinstancemigrations'), q('get', CDI, 'datavolumes', 'other'),
  q('watch', KV, 'virtualmachineinstances'), q('list', KV, 'kubevirts', 'kubevirt'),
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
  // More than needed inside them: the target side's verbs are the peer identity's, not this account's.
  q('watch', '', 'secrets', 'vms'), q('update', '', 'secrets', 'vms'), q('patch', '', 'secrets', 'vms'), q('watch', '', 'configmaps', 'vms'),
  q('list', '', 'secrets', 'vms'), q('create', '', 'secrets', 'vms'), q('delete', '', 'secrets', 'vms'),
  q('list', '', 'configmaps', 'vms'), q('create', '', 'configmaps', 'vms'), q('delete', '', 'configmaps', 'vms'),
  q('create', KV, 'virtualmachines', 'vms'), q('create', CDI, 'datavolumes', 'vms'), q('delete', CDI, 'datavolumes', 'vms'),
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
  // KubeVirt/CDI writes outside the listed namespaces (a VM there could mount any of its Secrets),
  // cluster-wide, and the verbs nothing uses.
  q('create', KV, 'virtualmachines', 'other'), q('create', KV, 'virtualmachines', 'kube-system'), q('create', KV, 'virtualmachines'),
  q('patch', KV, 'virtualmachines', 'other'), q('delete', KV, 'virtualmachines', 'kube-system'),
  q('create', KV, 'virtualmachineinstancemigrations', 'other'), q('delete', KV, 'virtualmachineinstancemigrations', 'kube-system'),
  q('create', CDI, 'datavolumes', 'other'), q('delete', CDI, 'datavolumes', 'kube-system'), q('create', CDI, 'datavolumes'),
  q('update', KV, 'virtualmachines', 'vms'), q('update', KV, 'virtualmachineinstancemigrations', 'vms'), q('patch', KV, 'virtualmachineinstancemigrations', 'vms'),
  q('update', CDI, 'datavolumes', 'vms'), q('patch', CDI, 'datavolumes', 'vms'),
  q('create', '', 'pods', 'other'), q('create', '', 'persistentvolumeclaims', 'other'), q('delete', '', 'persistentvolumeclaims', 'vms'),
];

/** A minimal VirtualMachine, POSTed with `kubectl create --raw` (no discovery needed). */
function vmFile(ns: string, name: string): string {
  const path = join(work, `vm-${ns}-${name}.json`);
  writeFileSync(path, JSON.stringify({
    apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: ns },
    spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: {} } } } },
  }));
  return path;
}
const vmsPath = (ns?: string, name?: string) => `/apis/kubevirt.io/v1${ns ? `/namespaces/${ns}` : ''}/virtualmachines${name ? `/${name}` : ''}`;

let cluster: Cluster;
let work: string;
let k: Kubectl;
let saToken: { token: string; path: string };

function applyChart(set: string[]): void {
  k.ok(['apply', '-f', '-'], undefined, helmTemplate(RELEASE, NS, [...OPERATOR_ONLY, ...set])); // the operator's RBAC (the site data plane has its own)
}

/**
 * Creates `name` (a ConfigMap or Secret in `ns`) with `kubeconfig` until the API server refuses it
 * with `message` (a new admission policy takes a moment to load), deleting what got through as
 * admin; fails if it never does.
 */
function eventuallyRefused(k: Kubectl, kubeconfig: string, kind: 'configmap' | 'secret', ns: string, name: string, message: RegExp): void {
  for (let i = 0; i < 60; i++) {
    const args = kind === 'secret' ? ['create', 'secret', 'generic', name, '--from-literal=a=b'] : ['create', 'configmap', name, '--from-literal=a=b'];
    const r = k.run(['-n', ns, ...args], kubeconfig);
    if (r.status !== 0) {
      assert.match(r.stderr, message, r.stderr);
      return;
    }
    k.ok(['-n', ns, 'delete', kind, name]);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
  assert.fail(`the API server kept admitting ${kind} ${ns}/${name}: the admission policy never took effect`);
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
    assert.deepEqual(roles.split('\n').filter(Boolean).sort(), [`${NS}/${RELEASE}`, `kubevirt/${RELEASE}-kubevirt-ca`, `vms/${RELEASE}-vmdata-source`]);
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

  it('the operator\'s own pre-start check (source-access.ts) passes in a listed namespace and names what is missing elsewhere', async () => {
    const client = new KubeClient(kubeConfigFromString(readFileSync(saToken.path, 'utf8'), 'token kubeconfig'), 'rbac');
    try {
      const signal = new AbortController().signal;
      for (const mode of ['Stop', 'Delete', 'Keep'] as const) {
        assert.deepEqual(await deniedAccess(client, sourceAccessChecks('vms', mode), signal, 5000), [], `vms, ${mode}`);
      }
      const denied = await deniedAccess(client, sourceAccessChecks('other', 'Stop'), signal, 5000);
      assert.deepEqual(denied.map(describeVerbOn), ['create virtualmachineinstancemigrations.kubevirt.io', 'delete virtualmachineinstancemigrations.kubevirt.io', 'patch virtualmachines.kubevirt.io']);
    } finally {
      await client.rest.close();
    }
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
    // VMs: read in any namespace, written only in the listed one.
    k.ok(['create', '--raw', vmsPath('other'), '-f', vmFile('other', 'vm-other')]);
    k.ok(['create', '--raw', vmsPath('vms'), '-f', vmFile('vms', 'vm-src')]);
    assert.match(as(['get', '--raw', vmsPath()]).stdout, /"vm-other"/, 'lists VMs in every namespace');
    assert.equal(as(['get', '--raw', vmsPath('other', 'vm-other')]).status, 0);
    forbidden(['create', '--raw', vmsPath('other'), '-f', vmFile('other', 'vm-mine')]);
    forbidden(['create', '--raw', vmsPath('kube-system'), '-f', vmFile('kube-system', 'vm-mine')]);
    forbidden(['delete', '--raw', vmsPath('other', 'vm-other')]);
    assert.equal(as(['delete', '--raw', vmsPath('vms', 'vm-src')]).status, 0, 'deletes a source VM in a listed namespace');
  });

  it('rbac.peer: the peer site\'s identity may receive a VM into a listed namespace only, nothing of this site\'s own', () => {
    applyChart(['rbac.vmDataNamespaces={vms}', 'rbac.peer.enabled=true']);
    const peer = tokenKubeconfig(k, cluster, work, NS, `${RELEASE}-peer`);
    const can = [
      q('get', '', 'namespaces', '', { name: 'vms' }), q('list', KV, 'kubevirts', 'kubevirt'),
      q('create', KV, 'virtualmachines', 'vms'), q('list', KV, 'virtualmachines', 'vms'), q('delete', KV, 'virtualmachines', 'vms'), q('get', KV, 'virtualmachineinstances', 'vms'),
      q('create', KV, 'virtualmachineinstancemigrations', 'vms'), q('delete', KV, 'virtualmachineinstancemigrations', 'vms'),
      q('create', CDI, 'datavolumes', 'vms'), q('list', CDI, 'datavolumes', 'vms'), q('delete', CDI, 'datavolumes', 'vms'),
      // Reads only where VMs may arrive: the operator's informers of this cluster watch those namespaces.
      q('watch', KV, 'virtualmachines', 'vms'), q('get', KV, 'virtualmachines', 'vms'), q('list', KV, 'virtualmachineinstances', 'vms'),
      q('watch', KV, 'virtualmachineinstancemigrations', 'vms'), q('get', CDI, 'datavolumes', 'vms'), q('watch', CDI, 'datavolumes', 'vms'),
      q('list', '', 'configmaps', 'kubevirt', CA), q('watch', '', 'configmaps', 'kubevirt', EXT_CA),
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
      // No KubeVirt/CDI writes outside the listed namespaces: a VM there could mount its Secrets and ServiceAccounts.
      q('create', KV, 'virtualmachines', 'other'), q('create', KV, 'virtualmachines', 'kube-system'), q('create', KV, 'virtualmachines'),
      q('delete', KV, 'virtualmachines', 'other'), q('create', KV, 'virtualmachineinstancemigrations', 'other'),
      q('delete', KV, 'virtualmachineinstancemigrations', 'kube-system'), q('create', CDI, 'datavolumes', 'other'), q('create', CDI, 'datavolumes', 'kube-system'),
      q('delete', CDI, 'datavolumes', 'other'), q('update', KV, 'virtualmachines', 'vms'), q('update', CDI, 'datavolumes', 'vms'),
      // No reads of VM data outside them either: VM specs can carry inline cloud-init data.
      q('list', KV, 'virtualmachines'), q('watch', KV, 'virtualmachines'), q('get', KV, 'virtualmachines', 'other'),
      q('list', KV, 'virtualmachineinstances'), q('get', KV, 'virtualmachineinstances', 'kube-system'), q('watch', KV, 'virtualmachineinstancemigrations'),
      q('list', CDI, 'datavolumes'), q('get', CDI, 'datavolumes', 'other'),
    ];
    const questions = [...can, ...cannot];
    const expected = [...can.map(() => true), ...cannot.map(() => false)];
    assert.deepEqual(mismatches(questions, expected, selfReview(k, peer.path, questions), 'peer SelfSubjectAccessReview'), []);
    const { user, groups } = serviceAccountUser(NS, `${RELEASE}-peer`);
    assert.deepEqual(mismatches(questions, expected, questions.map((a) => canIAs(k, user, groups, a)), 'peer kubectl auth can-i --as'), []);
    const r = k.run(['-n', NS, 'get', 'secrets'], peer.path);
    assert.match(r.stderr, /forbidden/i, 'the peer cannot read this site\'s kubeconfig Secrets');
    // RBAC lets it create ConfigMaps in KubeVirt's namespace (kubevirt-external-ca, when missing);
    // the chart's admission policy refuses any other name there.
    eventuallyRefused(k, peer.path, 'configmap', 'kubevirt', 'kubevirt-config', /may create only the ConfigMap kubevirt-external-ca/);
    // Real requests with the peer's token: a receiver VM in the listed namespace, not elsewhere; reads everywhere.
    const asPeer = (args: string[]) => k.run(args, peer.path);
    assert.equal(asPeer(['create', '--raw', vmsPath('vms'), '-f', vmFile('vms', 'receiver')]).status, 0, 'creates the receiver VM in a listed namespace');
    for (const ns of ['other', 'kube-system']) {
      const denied = asPeer(['create', '--raw', vmsPath(ns), '-f', vmFile(ns, 'receiver')]);
      assert.notEqual(denied.status, 0, `the peer created a VM in ${ns}`);
      assert.match(denied.stderr, /forbidden/i, denied.stderr);
    }
    assert.match(asPeer(['get', '--raw', vmsPath('vms')]).stdout, /"receiver"/, 'lists VMs in the listed namespace');
    assert.match(asPeer(['get', '--raw', vmsPath()]).stderr, /forbidden/i, 'lists no VMs across all namespaces');
    assert.match(asPeer(['get', '--raw', vmsPath('other', 'vm-other')]).stderr, /forbidden/i, 'reads no VM in a namespace that is not listed');
    assert.match(asPeer(['delete', '--raw', vmsPath('other', 'vm-other')]).stderr, /forbidden/i);
    assert.equal(asPeer(['delete', '--raw', vmsPath('vms', 'receiver')]).status, 0, 'removes the receiver VM on cleanup');
  });

  it('rbac.clusterWideVMData=true (explicit opt-in) grants VM data and VM writes in every namespace, and nothing more', () => {
    // The operator: reading VM data, and the source side's VM and VMIM writes (the copies are the peer's).
    const opened = [q('get', '', 'secrets', 'other'), q('get', '', 'configmaps', 'other'), q('get', '', 'secrets', 'kube-system'),
      q('patch', KV, 'virtualmachines', 'other'), q('delete', KV, 'virtualmachines', 'kube-system'), q('create', KV, 'virtualmachineinstancemigrations', 'other'),
      q('delete', KV, 'virtualmachineinstancemigrations', 'kube-system')];
    const stillClosed = [q('watch', '', 'secrets'), q('update', '', 'secrets', 'other'), q('patch', '', 'configmaps', 'kube-system'),
      q('list', '', 'secrets'), q('create', '', 'configmaps', 'other'), q('create', '', 'secrets', 'other'),
      q('patch', '', 'configmaps', 'kubevirt', CA), q('create', RBAC, 'clusterrolebindings'), q('update', KV, 'virtualmachines', 'other'),
      q('create', '', 'pods', 'other')];
    // The peer: the target side's reads and writes.
    const peerOpened = [q('create', KV, 'virtualmachines', 'other'), q('delete', KV, 'virtualmachines', 'kube-system'),
      q('create', KV, 'virtualmachineinstancemigrations', 'other'), q('create', CDI, 'datavolumes', 'other'), q('delete', CDI, 'datavolumes', 'kube-system'),
      q('list', KV, 'virtualmachines'), q('get', KV, 'virtualmachineinstances', 'other'), q('watch', CDI, 'datavolumes')];
    const peerStillClosed = [q('patch', KV, 'virtualmachines', 'other'), q('update', CDI, 'datavolumes', 'other'), q('get', '', 'secrets', NS), q('list', CN, 'sites')];
    const questions = [...opened, ...stillClosed];
    const peerQuestions = [...peerOpened, ...peerStillClosed];
    applyChart(['rbac.vmDataNamespaces={vms}', 'rbac.peer.enabled=true', 'rbac.clusterWideVMData=true']);
    const peer = tokenKubeconfig(k, cluster, work, NS, `${RELEASE}-peer`);
    assert.deepEqual(mismatches(questions, [...opened.map(() => true), ...stillClosed.map(() => false)], selfReview(k, saToken.path, questions), 'opted in'), []);
    assert.deepEqual(mismatches(peerQuestions, [...peerOpened.map(() => true), ...peerStillClosed.map(() => false)], selfReview(k, peer.path, peerQuestions), 'peer opted in'), []);
    applyChart(['rbac.vmDataNamespaces={vms}', 'rbac.peer.enabled=true']);
    assert.deepEqual(mismatches(questions, questions.map(() => false), selfReview(k, saToken.path, questions), 'default again'), []);
    assert.deepEqual(mismatches(peerQuestions, peerQuestions.map(() => false), selfReview(k, peer.path, peerQuestions), 'peer default again'), []);
  });

  it('storageAgents: the source agents\' Pods only in rbac.vmDataNamespaces, cluster-wide only with rbac.clusterWideVMData; never PVC writes (the target claims are the peer identity\'s)', () => {
    const listed = [q('create', '', 'pods', 'vms'), q('delete', '', 'pods', 'vms'), q('list', '', 'pods', 'vms'), q('create', '', 'secrets', 'vms')];
    const elsewhere = [q('create', '', 'pods', 'other'), q('create', '', 'pods', 'kube-system'), q('create', '', 'pods'), q('list', '', 'pods')];
    const never = [q('create', '', 'persistentvolumeclaims', 'vms'), q('list', '', 'persistentvolumeclaims', 'vms'),
      q('create', '', 'persistentvolumeclaims', 'other'), q('delete', '', 'persistentvolumeclaims', 'kube-system')];
    const questions = [...listed, ...elsewhere, ...never];
    const check = (set: string[], listedOk: boolean, elsewhereOk: boolean, how: string) => {
      applyChart(set);
      assert.deepEqual(mismatches(questions, [...listed.map(() => listedOk), ...elsewhere.map(() => elsewhereOk), ...never.map(() => false)], selfReview(k, saToken.path, questions), how), []);
    };
    check(['rbac.vmDataNamespaces={vms}', 'storageAgents.enabled=true'], true, false, 'listed namespaces');
    // No vmDataNamespaces: nothing new anywhere (the vms Role applied above is left as it was, so only "elsewhere" is asked).
    applyChart(['storageAgents.enabled=true']);
    assert.deepEqual(mismatches(elsewhere, elsewhere.map(() => false), selfReview(k, saToken.path, elsewhere), 'no vmDataNamespaces'), []);
    check(['rbac.vmDataNamespaces={vms}', 'storageAgents.enabled=true', 'rbac.clusterWideVMData=true'], true, true, 'opted in');
    check(['rbac.vmDataNamespaces={vms}'], false, false, 'agents off again');
  });

  it('the site gateway reads no Secret but its key; a peer site\'s gateway reads only the link state published for it', () => {
    k.ok(['apply', '-f', '-'], undefined, helmTemplate(RELEASE, NS, ['rbac.vmDataNamespaces={vms}', 'gateway.enabled=true', 'gateway.relay.enabled=false', 'routeAgent.enabled=false',
      'gateway.site=site-a', 'gateway.peers[0].site=site-b', 'gateway.peers[0].interface=cn-b', 'gateway.peers[0].tunnelAddress=198.18.10.1/24',
      'gateway.peers[0].kubeconfigSecret=site-b-gateway-kubeconfig']));
    k.ok(['-n', NS, 'create', 'secret', 'generic', 'site-b-kubeconfig', '--from-literal=kubeconfig=operator-peer-credential']);
    k.ok(['-n', NS, 'create', 'secret', 'generic', 'cloudnet-gateway-key', '--from-literal=private-key=x']);
    k.ok(['-n', NS, 'create', 'configmap', 'cloudnet-gateway-site-b', '--from-literal=state.json={}']);
    k.ok(['-n', NS, 'create', 'configmap', 'cloudnet-gateway-site-c', '--from-literal=state.json={}']);
    const gw = tokenKubeconfig(k, cluster, work, NS, `${RELEASE}-gateway`);
    const gwCan = [q('get', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }), q('update', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }), q('create', '', 'secrets', NS),
      q('patch', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' }), q('get', CN, 'sites'), q('create', '', 'events', 'default'),
      q('create', 'authentication.k8s.io', 'tokenreviews'), q('create', 'authorization.k8s.io', 'subjectaccessreviews')];
    const gwCannot = [q('get', '', 'secrets', NS, { name: 'site-b-kubeconfig' }), q('get', '', 'secrets', NS), q('list', '', 'secrets', NS), q('watch', '', 'secrets', NS),
      q('update', '', 'secrets', NS, { name: 'site-b-kubeconfig' }), q('delete', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }), q('list', '', 'secrets'),
      q('get', '', 'secrets', 'vms'), q('patch', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-c' }), q('create', KV, 'virtualmachines', 'vms'), q('list', CN, 'sites')];
    assert.deepEqual(mismatches([...gwCan, ...gwCannot], [...gwCan.map(() => true), ...gwCannot.map(() => false)], selfReview(k, gw.path, [...gwCan, ...gwCannot]), 'gateway SelfSubjectAccessReview'), []);
    const asGw = (args: string[]) => k.run(args, gw.path);
    assert.equal(asGw(['-n', NS, 'get', 'secret', 'cloudnet-gateway-key', '-o', 'name']).stdout.trim(), 'secret/cloudnet-gateway-key');
    for (const args of [['-n', NS, 'get', 'secret', 'site-b-kubeconfig'], ['-n', NS, 'get', 'secrets'], ['-n', NS, 'get', 'secrets', '--watch-only', '--request-timeout=5s']]) {
      const r = asGw(args);
      assert.notEqual(r.status, 0, `kubectl ${args.join(' ')} succeeded with the gateway's token`);
      assert.match(r.stderr, /forbidden/i, r.stderr);
      assert.doesNotMatch(r.stdout, /operator-peer-credential|b3BlcmF0b3It/);
    }
    // RBAC lets it create Secrets and ConfigMaps of any name; the chart's admission policy allows
    // only its own names, so it cannot plant a Site kubeconfig Secret before the admin creates it.
    // (The API server loads a new policy within a moment: the first attempts may still pass.)
    eventuallyRefused(k, gw.path, 'secret', NS, 'site-c-kubeconfig', /may create only the Secret cloudnet-gateway-key/);
    const cm = asGw(['-n', NS, 'create', 'configmap', 'not-the-gateways', '--from-literal=a=b']);
    assert.notEqual(cm.status, 0);
    assert.match(cm.stderr, /may create only its state ConfigMaps/, cm.stderr);
    assert.equal(asGw(['-n', NS, 'create', 'configmap', 'cloudnet-gateway-site-z', '--from-literal=state.json={}']).status, 0, 'its own state ConfigMap');
    k.ok(['-n', NS, 'create', 'secret', 'generic', 'admin-made', '--from-literal=a=b']); // nobody else is affected
    // What a peer site's gateway gets here (its kubeconfigSecret holds a token for this account).
    const pg = tokenKubeconfig(k, cluster, work, NS, `${RELEASE}-peer-gateway`);
    const pgCan = [q('get', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' })];
    const pgCannot = [q('get', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-c' }), q('list', '', 'configmaps', NS), q('get', '', 'secrets', NS, { name: 'site-b-kubeconfig' }),
      q('get', '', 'secrets', NS, { name: 'cloudnet-gateway-key' }), q('update', '', 'configmaps', NS, { name: 'cloudnet-gateway-site-b' }), q('get', CN, 'sites'),
      q('list', KV, 'virtualmachines'), q('create', KV, 'virtualmachines', 'vms'), q('get', '', 'configmaps', 'kubevirt', CA)];
    assert.deepEqual(mismatches([...pgCan, ...pgCannot], [...pgCan.map(() => true), ...pgCannot.map(() => false)], selfReview(k, pg.path, [...pgCan, ...pgCannot]), 'peer gateway SelfSubjectAccessReview'), []);
    assert.equal(k.run(['-n', NS, 'get', 'configmap', 'cloudnet-gateway-site-b', '-o', 'name'], pg.path).stdout.trim(), 'configmap/cloudnet-gateway-site-b');
    for (const args of [['-n', NS, 'get', 'configmap', 'cloudnet-gateway-site-c'], ['-n', NS, 'get', 'configmaps'], ['-n', NS, 'get', 'secret', 'site-b-kubeconfig']]) {
      assert.match(k.run(args, pg.path).stderr, /forbidden/i, `kubectl ${args.join(' ')} with the peer gateway's token`);
    }
  });
});
