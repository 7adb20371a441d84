// The Helm chart, rendered by the real Go-built helm (no cluster needed): lint, defaults, value
// switches, schema rejection, least-privilege RBAC, CRDs identical to crds/, and the plain
// manifests under config/ generated from it. test/integration/helm.test.ts installs it for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import yaml from 'js-yaml';
import { PEER_CLUSTER_PERMISSIONS } from '../../src/api/peer-permissions.ts';
import { cachedTool, chartDir, helmTemplate, KUBE_VERSION, OPERATOR_ONLY, renderAll, repoRoot, runHelm } from '../../hack/packaging.ts';
import { parseRelayApiSetting } from '../../src/operator/relay-client/relay-config.ts';
import { parseOperatorArgs } from '../../src/operator/main.ts';

interface Meta { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface K8sObject { apiVersion: string; kind: string; metadata: Meta; [k: string]: unknown }
interface PolicyRule { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }
interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Deployment extends K8sObject {
  spec: { replicas: number; template: { spec: { serviceAccountName: string; securityContext: Record<string, unknown>; containers: Container[] } } };
}

function parse(out: string): K8sObject[] {
  return yaml.loadAll(out).filter((d): d is K8sObject => typeof d === 'object' && d !== null);
}
/** The operator alone (most cases look at it); data-plane cases switch the gateway back on. */
function render(...set: string[]): K8sObject[] {
  return parse(helmTemplate('t', 'cloudnet-system', [...OPERATOR_ONLY, ...set]));
}
/** With the chart's defaults: operator and site data plane. */
function renderDefaults(...set: string[]): K8sObject[] {
  return parse(helmTemplate('t', 'cloudnet-system', set));
}
function only<T extends K8sObject>(docs: K8sObject[], kind: string, name?: string): T {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.equal(found.length, 1, `expected exactly one ${kind}${name ? ` ${name}` : ''}, got ${found.length}`);
  return found[0] as T;
}
function rules(o: K8sObject): PolicyRule[] {
  return (o as K8sObject & { rules: PolicyRule[] }).rules;
}
/**
 * group/resource[names] → sorted verbs, merging rules so the assertion does not depend on how rules
 * are grouped; rules limited to resourceNames keep them in the key.
 */
function grants(rs: PolicyRule[]): Record<string, string> {
  const m: Record<string, Set<string>> = {};
  for (const r of rs) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) {
    const k = `${g || 'core'}/${res}${r.resourceNames ? `[${r.resourceNames.join(',')}]` : ''}`;
    m[k] ??= new Set();
    for (const v of r.verbs) m[k].add(v);
  }
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort().join(',')]));
}

const READ = 'get,list,watch';
const VM_DATA = 'create,delete,get,list';
const SECRETS_CONFIGMAPS = /^core\/(secrets|configmaps)/;
const KUBEVIRT_CDI = /^(kubevirt\.io|cdi\.kubevirt\.io)\//;
/**
 * Every grant of `sa` on the kinds `which` matches (default: Secrets and ConfigMaps), wherever it
 * is granted, as "namespace group/resource[names]: verbs" ('*' for a ClusterRole).
 */
function operatorDataGrants(docs: K8sObject[], sa = 't-cloudnet', which = SECRETS_CONFIGMAPS): string[] {
  const bound = (d: K8sObject) => {
    const b = docs.find((x) => (x.kind === 'RoleBinding' || x.kind === 'ClusterRoleBinding') && (x as K8sObject & { roleRef: { kind: string; name: string } }).roleRef.name === d.metadata.name
      && (x.kind === 'ClusterRoleBinding') === (d.kind === 'ClusterRole') && x.metadata.namespace === d.metadata.namespace);
    return (b as (K8sObject & { subjects: { kind: string; name: string }[] }) | undefined)?.subjects.some((x) => x.kind === 'ServiceAccount' && x.name === sa);
  };
  const out: string[] = [];
  for (const d of docs.filter((x) => (x.kind === 'Role' || x.kind === 'ClusterRole') && bound(x))) {
    for (const [k, v] of Object.entries(grants(rules(d)))) {
      if (which.test(k)) out.push(`${d.metadata.namespace ?? '*'} ${k}: ${v}`);
    }
  }
  return out.sort();
}

describe('charts/cloudnet', () => {
  it('passes helm lint --strict, with defaults and with every optional part on', () => {
    const everything = ['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'rbac.vmDataNamespaces={vms}', '--set', 'rbac.clusterWideVMData=true',
      '--set', 'rbac.peer.enabled=true', '--set', 'rbac.peer.extraSubjects[0].kind=User,rbac.peer.extraSubjects[0].name=site-a',
      '--set', 'metrics.certSecret=cloudnet-metrics-cert', '--set',
      'gateway.enabled=true,gateway.site=a,gateway.peers[0].site=b,gateway.peers[0].interface=cn-b,gateway.peers[0].tunnelAddress=198.18.10.1/24,gateway.peers[0].kubeconfigSecret=b-gw',
      '--set', 'gateway.relay.enabled=false,rbac.peerGateway.extraSubjects[0].kind=User,rbac.peerGateway.extraSubjects[0].name=b-gateway',
      '--set', 'networkPolicy.enabled=true,networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring'];
    for (const extra of [[], everything]) {
      const r = runHelm(['lint', '--strict', chartDir, '--kube-version', KUBE_VERSION, ...extra]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('versions the app like package.json', () => {
    const chart = yaml.load(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { apiVersion: string; appVersion: string };
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.appVersion, pkg.version);
  });

  it('renders the operator alone with the gateway off', () => {
    const kinds = render().map((d) => `${d.kind}/${d.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ClusterRole/t-cloudnet', 'ClusterRole/t-cloudnet-editor', 'ClusterRole/t-cloudnet-metrics-auth', 'ClusterRole/t-cloudnet-metrics-reader',
      'ClusterRole/t-cloudnet-viewer', 'ClusterRoleBinding/t-cloudnet', 'ClusterRoleBinding/t-cloudnet-metrics-auth',
      'CustomResourceDefinition/sites.cloudnet.io', 'CustomResourceDefinition/wanmigrations.cloudnet.io',
      'Deployment/t-cloudnet', 'PodDisruptionBudget/t-cloudnet', 'Role/t-cloudnet', 'Role/t-cloudnet-kubevirt-ca',
      'RoleBinding/t-cloudnet', 'RoleBinding/t-cloudnet-kubevirt-ca', 'Service/t-cloudnet-metrics', 'ServiceAccount/t-cloudnet',
      'ValidatingAdmissionPolicy/t-cloudnet-kubevirt-ca-creates', 'ValidatingAdmissionPolicyBinding/t-cloudnet-kubevirt-ca-creates',
    ]);
  });

  it('runs 2 leader-elected, locked-down replicas with probes and resources', () => {
    const docs = render();
    const d = only<Deployment>(docs, 'Deployment');
    assert.equal(d.spec.replicas, 2);
    assert.equal(d.metadata.namespace, 'cloudnet-system');
    const pod = d.spec.template.spec;
    assert.equal(pod.serviceAccountName, only(docs, 'ServiceAccount').metadata.name);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    const [c] = pod.containers;
    assert.deepEqual(c.args, ['operator', '--leader-elect', '--leader-election-id=t-cloudnet', '--lease-duration=15s', '--renew-deadline=10s',
      '--retry-period=2s', '--metrics-bind-address=:8443', '--metrics-secure=true', '--health-probe-bind-address=:8081', '--max-concurrent-reconciles=16',
      '--kube-api-qps=80', '--kube-api-burst=20', '--graceful-shutdown-timeout=25s']);
    // The operator must finish its graceful shutdown before the kubelet's SIGKILL.
    assert.ok(25 < (d.spec.template.spec as unknown as { terminationGracePeriodSeconds: number }).terminationGracePeriodSeconds);
    const podNs = c.env.find((e) => e.name === 'POD_NAMESPACE');
    assert.equal(podNs?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
    assert.deepEqual(c.ports.map((p) => [p.name, p.containerPort]), [['metrics', 8443], ['health', 8081]]);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'health' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'health' });
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.runAsNonRoot, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.deepEqual(c.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, 'requests and a memory limit');
    assert.ok(c.volumeMounts.some((m) => m.mountPath === '/tmp'), 'writable /tmp for a read-only root');
    const svc = only<K8sObject & { spec: { ports: { port: number; targetPort: string }[] } }>(docs, 'Service');
    assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[8443, 'metrics']]);
    assert.ok(only(docs, 'PodDisruptionBudget'));
  });

  it('grants least privilege: no wildcards, Secrets/ConfigMaps only in named namespaces', () => {
    const docs = render();
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of rules(d)) {
        for (const v of [...(r.apiGroups ?? []), ...(r.resources ?? []), ...r.verbs, ...(r.nonResourceURLs ?? [])]) {
          assert.ok(!v.includes('*'), `${d.kind} ${d.metadata.name} has a wildcard: ${JSON.stringify(r)}`);
        }
      }
    }
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet'))), {
      'cdi.kubevirt.io/datavolumes': READ,
      'cloudnet.io/sites': 'get,list,patch,update,watch',
      'cloudnet.io/sites/finalizers': 'update',
      'cloudnet.io/sites/status': 'get,patch,update',
      'cloudnet.io/wanmigrations': 'get,list,patch,update,watch',
      'cloudnet.io/wanmigrations/finalizers': 'update',
      'cloudnet.io/wanmigrations/status': 'get,patch,update',
      'core/events': 'create,patch',
      'core/namespaces': 'get',
      'core/persistentvolumeclaims': 'get',
      'events.k8s.io/events': 'create,patch',
      'kubevirt.io/kubevirts': 'get,list,watch',
      'kubevirt.io/virtualmachineinstancemigrations': READ,
      'kubevirt.io/virtualmachineinstances': READ,
      'kubevirt.io/virtualmachines': READ,
    });
    // No write verb on KubeVirt/CDI objects anywhere by default: they are per namespace (rbac.vmDataNamespaces).
    assert.deepEqual(operatorDataGrants(docs, 't-cloudnet', KUBEVIRT_CDI), [
      `* cdi.kubevirt.io/datavolumes: ${READ}`, '* kubevirt.io/kubevirts: get,list,watch', `* kubevirt.io/virtualmachineinstancemigrations: ${READ}`,
      `* kubevirt.io/virtualmachineinstances: ${READ}`, `* kubevirt.io/virtualmachines: ${READ}`,
    ]);
    const role = only(docs, 'Role', 't-cloudnet');
    assert.equal(role.metadata.namespace, 'cloudnet-system');
    assert.deepEqual(grants(rules(role)), { 'coordination.k8s.io/leases': 'create,get,update', 'core/configmaps': 'get', 'core/secrets': 'get,list,watch' });
    const kubevirt = only(docs, 'Role', 't-cloudnet-kubevirt-ca');
    assert.equal(kubevirt.metadata.namespace, 'kubevirt');
    assert.deepEqual(grants(rules(kubevirt)), {
      'core/configmaps': 'create', 'core/configmaps[kubevirt-ca,kubevirt-external-ca]': 'get,list,watch', 'core/configmaps[kubevirt-external-ca]': 'patch',
    });
    // Everything the operator may do with Secrets and ConfigMaps by default, wherever it is granted.
    assert.deepEqual(operatorDataGrants(docs), [
      'cloudnet-system core/configmaps: get', 'cloudnet-system core/secrets: get,list,watch',
      'kubevirt core/configmaps: create', 'kubevirt core/configmaps[kubevirt-ca,kubevirt-external-ca]: get,list,watch', 'kubevirt core/configmaps[kubevirt-external-ca]: patch',
    ]);
    for (const name of ['t-cloudnet', 't-cloudnet-metrics-auth']) {
      const crb = only<K8sObject & { subjects: { kind: string; name: string; namespace: string }[] }>(docs, 'ClusterRoleBinding', name);
      assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 't-cloudnet', namespace: 'cloudnet-system' }]);
    }
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-metrics-auth'))), {
      'authentication.k8s.io/tokenreviews': 'create', 'authorization.k8s.io/subjectaccessreviews': 'create',
    });
    assert.deepEqual(rules(only(docs, 'ClusterRole', 't-cloudnet-metrics-reader')), [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
    assert.equal(docs.filter((d) => d.kind === 'ClusterRoleBinding' && (d as K8sObject & { roleRef: { name: string } }).roleRef.name === 't-cloudnet-metrics-reader').length, 0,
      'metrics-reader is for scrapers to bind, not bound by the chart');
  });

  it('grants VM data per namespace (rbac.vmDataNamespaces), cluster-wide only on explicit opt-in', () => {
    const confined = render('rbac.vmDataNamespaces={vms,vms-b}', 'rbac.kubevirtNamespace=kv');
    assert.deepEqual(operatorDataGrants(confined), [
      'cloudnet-system core/configmaps: get', 'cloudnet-system core/secrets: get,list,watch',
      'kv core/configmaps: create', 'kv core/configmaps[kubevirt-ca,kubevirt-external-ca]: get,list,watch', 'kv core/configmaps[kubevirt-external-ca]: patch',
      'vms core/configmaps: get', 'vms core/secrets: get', 'vms-b core/configmaps: get', 'vms-b core/secrets: get',
    ], 'the source side only reads what a VM references: the copies are made in the target cluster, by the peer identity');
    // The target side's Role exists only with rbac.peer, and binds only the peer identity.
    assert.equal(confined.filter((d) => d.metadata.name === 't-cloudnet-vmdata').length, 0, 'no target-side Role without rbac.peer');
    const withPeer = render('rbac.vmDataNamespaces={vms}', 'rbac.peer.enabled=true');
    const peerBinding = only<K8sObject & { subjects: { name: string; namespace: string }[] }>(withPeer, 'RoleBinding', 't-cloudnet-vmdata');
    assert.deepEqual(peerBinding.subjects.map((x) => `${x.namespace}/${x.name}`), ['cloudnet-system/t-cloudnet-peer']);
    // KubeVirt/CDI: read cluster-wide, written only in the listed namespaces, each side only what
    // it writes: the operator the sending VMIM and the source VM after cutover (stop: patch;
    // delete). Never create a VM or a DataVolume, never update.
    const reads = [
      `* cdi.kubevirt.io/datavolumes: ${READ}`, '* kubevirt.io/kubevirts: get,list,watch', `* kubevirt.io/virtualmachineinstancemigrations: ${READ}`,
      `* kubevirt.io/virtualmachineinstances: ${READ}`, `* kubevirt.io/virtualmachines: ${READ}`,
    ];
    assert.deepEqual(operatorDataGrants(confined, 't-cloudnet', KUBEVIRT_CDI), [
      ...reads,
      ...['vms', 'vms-b'].flatMap((ns) => [`${ns} kubevirt.io/virtualmachineinstancemigrations: create,delete`, `${ns} kubevirt.io/virtualmachines: delete,patch`]),
    ]);
    const source = only<K8sObject & { subjects: { name: string; namespace: string }[] }>(confined.filter((d) => d.metadata.namespace === 'vms'), 'RoleBinding', 't-cloudnet-vmdata-source');
    assert.deepEqual(source.subjects.map((x) => `${x.namespace}/${x.name}`), ['cloudnet-system/t-cloudnet']);
    const wide = render('rbac.clusterWideVMData=true');
    assert.deepEqual(operatorDataGrants(wide), [
      '* core/configmaps: get', '* core/secrets: get',
      'cloudnet-system core/configmaps: get', 'cloudnet-system core/secrets: get,list,watch',
      'kubevirt core/configmaps: create', 'kubevirt core/configmaps[kubevirt-ca,kubevirt-external-ca]: get,list,watch', 'kubevirt core/configmaps[kubevirt-external-ca]: patch',
    ]);
    // Opted in, the operator's ClusterRole gets the source side's writes everywhere (its target-side
    // writes go through the peer identity of the other cluster), and still nothing updates.
    assert.deepEqual(operatorDataGrants(wide, 't-cloudnet', KUBEVIRT_CDI), [
      `* cdi.kubevirt.io/datavolumes: ${READ}`, '* kubevirt.io/kubevirts: get,list,watch',
      `* kubevirt.io/virtualmachineinstancemigrations: create,delete,${READ}`, `* kubevirt.io/virtualmachineinstances: ${READ}`,
      '* kubevirt.io/virtualmachines: delete,get,list,patch,watch',
    ]);
  });

  it('grants a peer site\'s identity (rbac.peer) only what migrating a VM into this cluster needs', () => {
    assert.equal(render().filter((d) => d.metadata.name.includes('-peer')).length, 0, 'off by default');
    const docs = render('rbac.peer.enabled=true', 'rbac.vmDataNamespaces={vms}', 'rbac.peer.extraSubjects[0].kind=User',
      'rbac.peer.extraSubjects[0].name=site-a', 'rbac.peer.extraSubjects[0].apiGroup=rbac.authorization.k8s.io',
      'gateway.enabled=true', 'gateway.relay.enabled=false', 'routeAgent.enabled=false', 'gateway.site=site-b', 'gateway.peers[0].site=site-a', 'gateway.peers[0].interface=cn-a', 'gateway.peers[0].tunnelAddress=198.18.10.2/24',
      'gateway.peers[0].kubeconfigSecret=site-a-gateway-kubeconfig');
    assert.equal(only(docs, 'ServiceAccount', 't-cloudnet-peer').metadata.namespace, 'cloudnet-system');
    // Read and write only in rbac.vmDataNamespaces: a VM created in any namespace could mount that
    // namespace's Secrets and ServiceAccounts, and VM specs can carry inline cloud-init data.
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-peer'))), {
      'core/namespaces': 'get', 'kubevirt.io/kubevirts': 'list,watch',
    });
    assert.deepEqual(operatorDataGrants(docs, 't-cloudnet-peer', KUBEVIRT_CDI), [
      '* kubevirt.io/kubevirts: list,watch',
      `vms cdi.kubevirt.io/datavolumes: create,delete,${READ}`, `vms kubevirt.io/virtualmachineinstancemigrations: create,delete,${READ}`,
      `vms kubevirt.io/virtualmachineinstances: ${READ}`, `vms kubevirt.io/virtualmachines: create,delete,${READ}`,
    ], 'no patch of VMs: stopping the source VM is the operator\'s (t-cloudnet-vmdata-source)');
    // Without listed namespaces the peer may read or write no VM data; everywhere only with the opt-in.
    assert.deepEqual(operatorDataGrants(render('rbac.peer.enabled=true'), 't-cloudnet-peer', KUBEVIRT_CDI), ['* kubevirt.io/kubevirts: list,watch']);
    assert.deepEqual(grants(rules(only(render('rbac.peer.enabled=true', 'rbac.clusterWideVMData=true'), 'ClusterRole', 't-cloudnet-peer'))), {
      'cdi.kubevirt.io/datavolumes': `create,delete,${READ}`, 'core/namespaces': 'get', 'kubevirt.io/kubevirts': 'list,watch',
      'kubevirt.io/virtualmachineinstancemigrations': `create,delete,${READ}`, 'kubevirt.io/virtualmachineinstances': READ,
      'kubevirt.io/virtualmachines': `create,delete,${READ}`,
    });
    const peerData = operatorDataGrants(docs, 't-cloudnet-peer');
    assert.deepEqual(peerData, [
      'kubevirt core/configmaps: create', 'kubevirt core/configmaps[kubevirt-ca,kubevirt-external-ca]: get,list,watch', 'kubevirt core/configmaps[kubevirt-external-ca]: patch',
      `vms core/configmaps: ${VM_DATA}`, `vms core/secrets: ${VM_DATA}`,
    ], 'no Secret in the release namespace: the Site kubeconfigs there are not the peer\'s business');
    type Binding = K8sObject & { roleRef: { name: string }; subjects: { kind: string; name: string; namespace?: string }[] };
    for (const b of docs.filter((d): d is Binding => /Binding$/.test(d.kind) && ['t-cloudnet-peer', 't-cloudnet-kubevirt-ca', 't-cloudnet-vmdata'].includes(d.metadata.name))) {
      assert.deepEqual(b.subjects.filter((x) => x.name !== 't-cloudnet').map((x) => `${x.kind}/${x.name}`), ['ServiceAccount/t-cloudnet-peer', 'User/site-a'], `${b.kind} ${b.metadata.name}`);
    }
    // The peer's GATEWAY has its own identity here, which may get the published link state and nothing else.
    assert.deepEqual(only<Binding>(docs, 'RoleBinding', 't-cloudnet-peer-gateway').subjects.map((x) => `${x.kind}/${x.name}`), ['ServiceAccount/t-cloudnet-peer-gateway']);
    assert.deepEqual(operatorDataGrants(docs, 't-cloudnet-peer-gateway', /./), ['cloudnet-system core/configmaps[cloudnet-gateway-site-a]: get']);
    assert.equal(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-peer')))['cloudnet.io/sites'], undefined);
  });

  it('serves metrics kubebuilder-v4 style (HTTPS, TokenReview + SubjectAccessReview), or plain when turned off', () => {
    const container = (docs: K8sObject[]) => only<Deployment>(docs, 'Deployment').spec.template.spec.containers[0];
    const plain = render('metrics.secure=false', 'metrics.port=8080');
    assert.ok(container(plain).args.includes('--metrics-secure=false'));
    assert.ok(container(plain).args.includes('--metrics-bind-address=:8080'));
    assert.equal(plain.filter((d) => d.metadata.name.includes('metrics-auth') || d.metadata.name.includes('metrics-reader')).length, 0);
    type Monitor = K8sObject & { spec: { endpoints: { scheme?: string; bearerTokenFile?: string; tlsConfig?: Record<string, unknown> }[] } };
    assert.equal(only<Monitor>(render('metrics.secure=false', 'metrics.serviceMonitor.enabled=true'), 'ServiceMonitor').spec.endpoints[0].scheme, undefined);
    const selfSigned = only<Monitor>(render('metrics.serviceMonitor.enabled=true'), 'ServiceMonitor').spec.endpoints[0];
    assert.equal(selfSigned.scheme, 'https');
    assert.equal(selfSigned.bearerTokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
    assert.deepEqual(selfSigned.tlsConfig, { insecureSkipVerify: true });
    const certDocs = render('metrics.certSecret=metrics-cert', 'metrics.serviceMonitor.enabled=true');
    const c = container(certDocs);
    assert.ok(c.args.includes('--metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs'));
    assert.deepEqual(c.volumeMounts.find((m) => m.name === 'metrics-certs'), { name: 'metrics-certs', mountPath: '/tmp/k8s-metrics-server/metrics-certs', readOnly: true });
    const vol = (only<Deployment>(certDocs, 'Deployment').spec.template.spec as unknown as { volumes: { name: string; secret?: { secretName: string } }[] }).volumes.find((v) => v.name === 'metrics-certs');
    assert.equal(vol?.secret?.secretName, 'metrics-cert');
    assert.deepEqual(only<Monitor>(certDocs, 'ServiceMonitor').spec.endpoints[0].tlsConfig, {
      serverName: 't-cloudnet-metrics.cloudnet-system.svc', insecureSkipVerify: false, ca: { secret: { name: 'metrics-cert', key: 'ca.crt' } },
    });
    // The operator's own (strict) flag parser accepts every flag the chart passes, in each mode.
    const dir = mkdtempSync(join(tmpdir(), 'cloudnet-chart-args-'));
    try {
      const kc = join(dir, 'kubeconfig');
      writeFileSync(kc, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
      const parsed = (docs: K8sObject[]) => parseOperatorArgs([...container(docs).args.slice(1), '--kubeconfig', kc]);
      assert.deepEqual([parsed(render()).metricsSecure, parsed(render()).metricsCertDir], [true, undefined]);
      assert.equal(parsed(plain).metricsSecure, false);
      assert.equal(parsed(certDocs).metricsCertDir, '/tmp/k8s-metrics-server/metrics-certs');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders CRDs identical to crds/*.yaml, kept on uninstall', () => {
    const fromRepo = new Map<string, K8sObject>();
    for (const f of readdirSync(join(repoRoot, 'crds')).filter((n) => n.endsWith('.yaml'))) {
      for (const d of parse(readFileSync(join(repoRoot, 'crds', f), 'utf8'))) fromRepo.set(d.metadata.name, d);
    }
    assert.deepEqual([...fromRepo.keys()].sort(), ['sites.cloudnet.io', 'wanmigrations.cloudnet.io']);
    const rendered = render().filter((d) => d.kind === 'CustomResourceDefinition');
    assert.deepEqual(rendered.map((d) => d.metadata.name).sort(), [...fromRepo.keys()].sort());
    for (const crd of rendered) {
      const src = fromRepo.get(crd.metadata.name);
      assert.ok(src);
      assert.deepEqual(crd.spec, src.spec, `spec of ${crd.metadata.name} differs from crds/`);
      assert.equal(crd.apiVersion, src.apiVersion);
      assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
      for (const [k, v] of Object.entries(src.metadata.annotations ?? {})) assert.equal(crd.metadata.annotations?.[k], v);
    }
    for (const crd of render('crds.keep=false').filter((d) => d.kind === 'CustomResourceDefinition')) {
      assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], undefined);
    }
    assert.equal(render('crds.install=false').filter((d) => d.kind === 'CustomResourceDefinition').length, 0);
  });

  it('packages into a self-contained chart (the crds-src symlink is resolved)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudnet-chart-pkg-'));
    try {
      const pkg = runHelm(['package', chartDir, '--destination', dir]);
      assert.equal(pkg.status, 0, pkg.stderr);
      const tgz = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz')) ?? 'missing.tgz');
      const r = runHelm(['template', 't', tgz, '--kube-version', KUBE_VERSION]);
      assert.equal(r.status, 0, r.stderr);
      const crds = parse(r.stdout).filter((d) => d.kind === 'CustomResourceDefinition').map((d) => d.metadata.name).sort();
      assert.deepEqual(crds, ['sites.cloudnet.io', 'wanmigrations.cloudnet.io']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with networkPolicy.enabled, lets into the operator\'s pods only the metrics port (from metricsFrom) and the health port', () => {
    assert.equal(render().filter((d) => d.kind === 'NetworkPolicy').length, 0, 'off by default');
    type Np = K8sObject & { spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: { ports: { port: number }[]; from?: object[] }[] } };
    const docs = render('networkPolicy.enabled=true', 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring');
    const np = only<Np>(docs, 'NetworkPolicy');
    const dep = only<Deployment & { spec: { selector: { matchLabels: Record<string, string> } } }>(docs, 'Deployment');
    assert.deepEqual(np.spec.podSelector.matchLabels, dep.spec.selector.matchLabels, 'selects exactly the operator\'s pods');
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    assert.deepEqual(np.spec.ingress.map((r) => [r.ports.map((p) => p.port), r.from ?? 'any']), [
      [[8443], [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }]],
      [[8081], 'any'],
    ]);
  });

  it('follows values: replicas, leader election, ServiceMonitor, PDB', () => {
    assert.equal(only<Deployment>(render('replicaCount=3'), 'Deployment').spec.replicas, 3);
    const single = render('replicaCount=1');
    assert.equal(single.filter((d) => d.kind === 'PodDisruptionBudget').length, 0, 'no PDB for a single replica');
    const noLe = render('leaderElection.enabled=false');
    assert.ok(!only<Deployment>(noLe, 'Deployment').spec.template.spec.containers[0].args.includes('--leader-elect'));
    assert.equal(grants(rules(only(noLe, 'Role', 't-cloudnet')))['coordination.k8s.io/leases'], undefined);
    assert.equal(render().filter((d) => d.kind === 'ServiceMonitor').length, 0, 'ServiceMonitor is off by default');
    const sm = only<K8sObject & { spec: { endpoints: { port: string }[] } }>(render('metrics.serviceMonitor.enabled=true'), 'ServiceMonitor');
    assert.equal(sm.spec.endpoints[0].port, 'metrics');
    const digest = `sha256:${'a'.repeat(64)}`;
    const pinned = only<Deployment>(render(`image.digest=${digest}`), 'Deployment').spec.template.spec.containers[0];
    assert.equal(pinned.image, `ghcr.io/cloudnet-io/cloudnet@${digest}`);
  });

  it('renders one locked-down host-network gateway per peer when gateway.enabled', () => {
    const peers = ['gateway.peers[0].site=site-b', 'gateway.peers[0].interface=cn-b', 'gateway.peers[0].tunnelAddress=198.18.10.1/24', 'gateway.peers[0].networks={192.0.2.0/24}',
      'gateway.peers[0].kubeconfigSecret=site-b-gw', 'gateway.peers[1].site=site-c', 'gateway.peers[1].interface=cn-c', 'gateway.peers[1].tunnelAddress=198.18.11.1/24',
      'gateway.peers[1].listenPort=51821'];
    const docs = render('gateway.enabled=true', 'gateway.site=site-a', 'gateway.relay.enabled=false', ...peers, 'gateway.peers[1].kubeconfigSecret=site-c-gw');
    // A peer without its own credential for the peer cluster: the chart refuses, saying why.
    const missing = runHelm(['template', 't', chartDir, '--kube-version', KUBE_VERSION, ...['gateway.enabled=true', 'gateway.site=site-a', 'gateway.relay.enabled=false', ...peers].flatMap((x) => ['--set', x])]);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /gateway\.peers\[1\]\.kubeconfigSecret is required: .*site site-c.*<release>-peer-gateway there.*get the ConfigMap cloudnet-gateway-site-a/);
    // Its creates are confined to its own names by an admission policy (RBAC cannot name a create).
    type Policy = K8sObject & { spec: { matchConditions: { expression: string }[]; validations: { expression: string }[] } };
    const policy = only<Policy>(docs, 'ValidatingAdmissionPolicy', 't-cloudnet-gateway-creates');
    assert.equal(policy.spec.matchConditions[0].expression, 'request.userInfo.username == "system:serviceaccount:cloudnet-system:t-cloudnet-gateway"');
    assert.match(policy.spec.validations.map((v) => v.expression).join(' '), /object\.metadata\.name == 'cloudnet-gateway-key'.*startsWith\('cloudnet-gateway-'\)/);
    assert.equal(only<K8sObject & { spec: { policyName: string; validationActions: string[] } }>(docs, 'ValidatingAdmissionPolicyBinding', 't-cloudnet-gateway-creates').spec.validationActions[0], 'Deny');
    const gws = docs.filter((d) => d.kind === 'Deployment' && d.metadata.labels?.['app.kubernetes.io/component'] === 'gateway') as (Deployment & { spec: { template: { spec: { hostNetwork: boolean; volumes: { hostPath?: { path: string } }[] } } } })[];
    assert.deepEqual(gws.map((d) => d.metadata.name), ['t-cloudnet-gateway-site-b', 't-cloudnet-gateway-site-c']);
    const [b] = gws;
    const c = b.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['gateway', '--kube', '--site=site-a', '--peer-site=site-b', '--interface=cn-b', '--tunnel-address=198.18.10.1/24',
      '--namespace=cloudnet-system', '--listen-port=51820', '--metrics-bind-address=:9478', '--peer-kubeconfig=/etc/cloudnet/peer-kubeconfig/kubeconfig',
      '--node-address=$(NODE_IP)', '--network=192.0.2.0/24']);
    // Its peer credential: the Secret named for that peer, mounted read-only (optional: the gateway waits for it).
    type Vol = { name: string; secret?: { secretName: string; optional?: boolean; items?: { key: string; path: string }[] } };
    const vols = (b.spec.template.spec as unknown as { volumes: Vol[] }).volumes;
    assert.deepEqual(vols.find((v) => v.name === 'peer-kubeconfig')?.secret, { secretName: 'site-b-gw', defaultMode: 0o400, optional: true, items: [{ key: 'kubeconfig', path: 'kubeconfig' }] });
    assert.deepEqual(c.volumeMounts.find((m) => m.name === 'peer-kubeconfig'), { name: 'peer-kubeconfig', mountPath: '/etc/cloudnet/peer-kubeconfig', readOnly: true });
    assert.equal((gws[1].spec.template.spec as unknown as { volumes: Vol[] }).volumes.find((v) => v.name === 'peer-kubeconfig')?.secret?.secretName, 'site-c-gw');
    assert.equal(b.spec.template.spec.hostNetwork, true);
    assert.equal(b.spec.template.spec.serviceAccountName, 't-cloudnet-gateway');
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.ok(b.spec.template.spec.volumes.some((v) => v.hostPath?.path === '/dev/net/tun'));
    assert.ok(gws[1].spec.template.spec.containers[0].args.includes('--listen-port=51821'));
    // The gateway's own (strict) flag parser accepts every flag the chart passes; --help stops it there.
    const [sub, ...flags] = c.args;
    const parsed = spawnSync(process.execPath, [join(repoRoot, 'src', 'cli.ts'), sub, ...flags, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(parsed.status, 0, `cloudnet ${c.args.join(' ')} --help: ${parsed.stderr}`);
    // The operator's selectors must not pick up gateway pods.
    const op = only<Deployment & { spec: { selector: { matchLabels: Record<string, string> } } }>(docs, 'Deployment', 't-cloudnet');
    assert.equal(op.spec.selector.matchLabels['app.kubernetes.io/component'], 'operator');
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-gateway'))), { 'cloudnet.io/sites': 'get' });
    assert.deepEqual(grants(rules(only(docs.filter((d) => d.metadata.namespace === 'cloudnet-system'), 'Role', 't-cloudnet-gateway'))), {
      'core/configmaps': 'create,get', 'core/configmaps[cloudnet-gateway-site-b,cloudnet-gateway-site-c]': 'patch,update',
      'core/secrets': 'create', 'core/secrets[cloudnet-gateway-key]': 'get,update',
    }, 'no Secret list/watch/get but its own key: the Site kubeconfig Secrets are the operator\'s');
    // Authenticated /metrics and /status: it may ask TokenReviews and SubjectAccessReviews, nothing more.
    type Binding = K8sObject & { roleRef: { name: string }; subjects: { name: string; namespace?: string }[] };
    const authn = only<Binding>(docs, 'ClusterRoleBinding', 't-cloudnet-gateway-metrics-auth');
    assert.equal(authn.roleRef.name, 't-cloudnet-metrics-auth');
    assert.deepEqual(authn.subjects.map((x) => `${x.namespace}/${x.name}`), ['cloudnet-system/t-cloudnet-gateway']);
    // metrics.secure=false: plain HTTP on loopback only, and no review rights.
    const plain = render('gateway.enabled=true', 'gateway.site=site-a', 'gateway.relay.enabled=false', ...peers, 'gateway.peers[1].kubeconfigSecret=site-c-gw', 'metrics.secure=false');
    const plainArgs = only<Deployment>(plain, 'Deployment', 't-cloudnet-gateway-site-b').spec.template.spec.containers[0].args;
    assert.ok(plainArgs.includes('--metrics-bind-address=127.0.0.1:9478') && plainArgs.includes('--metrics-secure=false'), plainArgs.join(' '));
    assert.equal(plain.filter((d) => d.metadata.name === 't-cloudnet-gateway-metrics-auth').length, 0);
    const events = only(docs, 'Role', 't-cloudnet-gateway-events');
    assert.equal(events.metadata.namespace, 'default');
    assert.deepEqual(grants(rules(events)), { 'core/events': 'create,patch' });
    assert.equal(render().filter((d) => d.metadata.name.includes('gateway')).length, 0, 'no gateway by default');
  });

  it('with defaults renders the site data plane: gateway with the relay pair, route agent; no peer identity', () => {
    const docs = renderDefaults();
    type Pod = { hostNetwork?: boolean; containers: Container[]; affinity?: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: { matchExpressions: { key: string; operator: string; values: string[] }[] }[] } } }; nodeSelector?: Record<string, string> };
    const gw = only<K8sObject & { spec: { template: { spec: Pod } } }>(docs, 'Deployment', 't-cloudnet-gateway-site-b');
    const pod = gw.spec.template.spec;
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(pod.nodeSelector, { 'cloudnet.io/gateway': 'true' });
    assert.deepEqual(pod.containers.map((c) => c.name), ['gateway', 'relay-send', 'relay-receive']);
    const [, send, receive] = pod.containers;
    for (const c of pod.containers) assert.match(c.image, /^ghcr\.io\/cloudnet-io\/cloudnet-gateway:/);
    assert.deepEqual(send.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] }, 'the sender owns its nftables table');
    assert.ok(send.args.includes('--intercept=nft:cloudnet_site_b') && send.args.includes('--api=$(POD_IP):9443'), send.args.join(' '));
    assert.ok(send.args.includes('--peer=198.18.10.2:7400') && send.args.includes('--servername=relay.site-b.cloudnet'));
    assert.deepEqual(receive.securityContext.capabilities, { drop: ['ALL'] }, 'the receiver needs no privilege');
    assert.equal(receive.securityContext.runAsNonRoot, true);
    assert.ok(receive.args.includes('--listen=198.18.10.1:7400') && receive.args.includes('--allow-destination=192.0.2.0/24'), receive.args.join(' '));
    // The relay's own argument parser accepts what the chart passes (--help stops it there).
    for (const c of [send, receive]) {
      const r = spawnSync(process.execPath, [join(repoRoot, 'src', 'cli.ts'), ...c.args, '--help'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, `cloudnet ${c.args.join(' ')} --help: ${r.stderr}`);
    }
    const svc = only<K8sObject & { spec: { ports: { port: number; targetPort: number }[]; selector: Record<string, string> } }>(docs, 'Service', 't-cloudnet-relay-site-b');
    assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[443, 9443]]);
    assert.equal(svc.spec.selector['cloudnet.io/peer-site'], 'site-b');
    assert.ok(only(docs, 'Secret', 't-cloudnet-relay-api'), 'a generated API token');
    // The operator: link provider on, relay API from the Service, token and CA mounted.
    const op = only<Deployment>(docs, 'Deployment', 't-cloudnet').spec.template.spec.containers[0];
    const env = Object.fromEntries(op.env.map((e) => [e.name, e.value]));
    assert.equal(env.CLOUDNET_LINK_PROVIDER, 'gateway');
    assert.equal(env.CLOUDNET_RELAY_API, 'site-b=https://t-cloudnet-relay-site-b.cloudnet-system.svc:443');
    assert.ok(parseRelayApiSetting(env.CLOUDNET_RELAY_API!));
    assert.match(op.image, /^ghcr\.io\/cloudnet-io\/cloudnet:/);
    // Route agent: every node but the gateway nodes, host network, NET_ADMIN only, reads configmaps only.
    const ds = only<K8sObject & { spec: { template: { spec: Pod } } }>(docs, 'DaemonSet', 't-cloudnet-route-agent');
    assert.deepEqual(ds.spec.template.spec.affinity?.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions,
      [{ key: 'cloudnet.io/gateway', operator: 'NotIn', values: ['true'] }]);
    assert.deepEqual(ds.spec.template.spec.containers[0].args, ['route-agent', '--kube', '--namespace=cloudnet-system', '--interval-ms=5000']);
    assert.deepEqual(ds.spec.template.spec.containers[0].securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.deepEqual(grants(rules(only(docs, 'Role', 't-cloudnet-route-agent'))), { 'core/configmaps': 'list' });
    // The peer identity is rbac.peer (off by default: a cluster admin opts in where VMs arrive); no wildcard anywhere.
    assert.equal(docs.filter((d) => d.metadata.name.startsWith('t-cloudnet-peer') && !d.metadata.name.startsWith('t-cloudnet-peer-gateway')).length, 0, 'rbac.peer is off by default');
    // The peer sites' gateways have their identity wherever gateways run (links are symmetric).
    assert.deepEqual(grants(rules(only(docs, 'Role', 't-cloudnet-peer-gateway'))), { 'core/configmaps[cloudnet-gateway-site-b]': 'get' });
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of rules(d)) for (const v of [...(r.apiGroups ?? []), ...(r.resources ?? []), ...r.verbs]) assert.ok(!v.includes('*'), `${d.metadata.name}: wildcard`);
    }
    // cert-manager: a Certificate for the relay's TLS Secret only when its CRD exists.
    assert.equal(docs.filter((d) => d.kind === 'Certificate').length, 0);
    const r = runHelm(['template', 't', chartDir, '--namespace', 'cloudnet-system', '--kube-version', KUBE_VERSION, '--api-versions', 'cert-manager.io/v1/Certificate']);
    assert.equal(r.status, 0, r.stderr);
    const cert = only<K8sObject & { spec: { secretName: string; dnsNames: string[]; usages: string[] } }>(parse(r.stdout), 'Certificate');
    assert.equal(cert.spec.secretName, 't-cloudnet-relay-tls');
    assert.deepEqual(cert.spec.dnsNames, ['relay.site-a.cloudnet', 't-cloudnet-relay-site-b.cloudnet-system.svc']);
    assert.ok(cert.spec.usages.includes('server auth') && cert.spec.usages.includes('client auth'));
  });

  it('passes operator.relayAPI and its token Secret to the operator (CLOUDNET_RELAY_API*)', () => {
    const env = (...set: string[]) => only<Deployment>(render(...set), 'Deployment').spec.template.spec.containers[0].env;
    assert.equal(env().find((e) => e.name === 'CLOUDNET_RELAY_API'), undefined, 'no relay by default');
    for (const url of ['https://relay.cloudnet-system:9443', 'site-b=https://10.0.0.7:9443']) {
      const e = env(`operator.relayAPI=${url}`, 'operator.relayAPISecret=relay-api');
      const value = e.find((x) => x.name === 'CLOUDNET_RELAY_API')?.value;
      assert.equal(value, url);
      assert.ok(parseRelayApiSetting(value!), 'the operator accepts what the chart passes');
      assert.equal(e.find((x) => x.name === 'CLOUDNET_RELAY_API_TOKEN_FILE')?.value, '/var/run/cloudnet/relay-api/token');
    }
    const r = runHelm(['template', 't', chartDir, '--kube-version', KUBE_VERSION, '--set', 'operator.relayAPI=https://r:9443']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /relayAPISecret is required/);
  });

  it('rejects bad values through values.schema.json', () => {
    const cases: [string, RegExp][] = [
      ['replicaCount=two', /'\/replicaCount': got string, want integer/],
      ['replicaCount=-1', /'\/replicaCount': minimum/],
      ['image.pullPolicy=Sometimes', /'\/image\/pullPolicy'/],
      ['image.digest=latest', /'\/image\/digest'/],
      ['crds.install=maybe', /'\/crds\/install': got string, want boolean/],
      ['metrics.port=70000', /'\/metrics\/port': maximum/],
      ['operator.logLevel=verbose', /'\/operator\/logLevel'/],
      ['replicas=2', /additional properties 'replicas' not allowed/],
      ['securityContext.allowPrivilegeEscalation=true', /'\/securityContext\/allowPrivilegeEscalation': value must be false/],
      ['podSecurityContext.runAsNonRoot=false', /'\/podSecurityContext\/runAsNonRoot': value must be true/],
      ['rbac.vmDataNamespaces={Not_A_Namespace}', /'\/rbac\/vmDataNamespaces\/0'/],
      ['rbac.clusterWideVMData=yes', /'\/rbac\/clusterWideVMData': got string, want boolean/],
      ['rbac.kubevirtNamespace=Kube_Virt', /'\/rbac\/kubevirtNamespace'/],
      ['metrics.secure=maybe', /'\/metrics\/secure': got string, want boolean/],
      ['metrics.certSecret=Not A Secret', /'\/metrics\/certSecret'/],
      ['rbac.peer.extraSubjects[0].kind=Robot,rbac.peer.extraSubjects[0].name=x', /'\/rbac\/peer\/extraSubjects\/0\/kind'/],
      ['gateway.site=', /'\/gateway\/site': minLength/],
      ['leaderElection.leaseDuration=1m30s', /'\/leaderElection\/leaseDuration'/],
      ['operator.maxConcurrentReconciles=0', /'\/operator\/maxConcurrentReconciles'/],
      ['operator.kubeAPI.burst=0', /'\/operator\/kubeAPI\/burst'/],
      ['gateway.peers[0].site=b', /'\/gateway\/peers\/0': missing propert/],
      ['gateway.metricsBindAddress=every address', /'\/gateway\/metricsBindAddress'/],
      ['rbac.peerGateway.extraSubjects[0].kind=Robot,rbac.peerGateway.extraSubjects[0].name=x', /'\/rbac\/peerGateway\/extraSubjects\/0\/kind'/],
      ['operator.relayAPI=http://relay-send:9410', /'\/operator\/relayAPI'/],
    ];
    for (const [set, why] of cases) {
      const r = runHelm(['template', 't', chartDir, '--kube-version', KUBE_VERSION, '--set', set]);
      assert.notEqual(r.status, 0, `helm accepted ${set}`);
      assert.match(r.stderr, why, `${set}: ${r.stderr}`);
    }
  });
});

describe('config/ plain manifests', () => {
  it('are up to date with the chart and health.lua (node hack/gen-packaging.ts)', () => {
    for (const [path, want] of renderAll()) {
      let have: string | undefined;
      try { have = readFileSync(join(repoRoot, path), 'utf8'); } catch { have = undefined; }
      assert.ok(have === want, `${path} is stale: run node hack/gen-packaging.ts`);
    }
  });

  it('build with kustomize into the chart objects minus CRDs', () => {
    const r = spawnSync(cachedTool('kubectl'), ['kustomize', join(repoRoot, 'config', 'default')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = parse(r.stdout).map((d) => `${d.kind}/${d.metadata.name}`).sort();
    const chart = parse(helmTemplate('cloudnet', 'cloudnet-system', ['crds.install=false', ...OPERATOR_ONLY])).map((d) => `${d.kind}/${d.metadata.name}`);
    assert.deepEqual(got, [...chart, 'Namespace/cloudnet-system'].sort());
  });
});

it('rbac.peer grants every permission the Site reconciler checks in a peer, where it checks it (src/api/peer-permissions.ts)', () => {
  // The receiving cluster's rights for the peer identity are the peer ClusterRole plus the Roles
  // its RoleBindings name (VM data in the listed namespaces, the KubeVirt CA bundles). A permission
  // added to the checked list without a rule here would make every Site report PeerPermissionsMissing.
  // rbac.peer is the chart's one mechanism for the peer identity.
  const docs = render('rbac.peer.enabled=true', 'rbac.vmDataNamespaces={vms}');
  type Binding = K8sObject & { subjects?: { kind: string; name: string }[]; roleRef: { kind: string; name: string } };
  const peerSubject = (s: { kind: string; name: string }) => s.kind === 'ServiceAccount' && s.name === 't-cloudnet-peer';
  const bindings = docs.filter((d): d is Binding => (d.kind === 'RoleBinding' || d.kind === 'ClusterRoleBinding') && ((d as Binding).subjects ?? []).some(peerSubject));
  assert.ok(bindings.length > 0, 'the peer ServiceAccount is bound to nothing');
  // Each granted rule with where it applies: '*' for a ClusterRoleBinding, else the RoleBinding's namespace.
  const granted = bindings.flatMap((bd) => {
    const where = bd.kind === 'ClusterRoleBinding' ? '*' : bd.metadata.namespace!;
    const role = docs.find((d) => d.kind === bd.roleRef.kind && d.metadata.name === bd.roleRef.name
      && (d.kind === 'ClusterRole' || d.metadata.namespace === bd.metadata.namespace));
    assert.ok(role, `${bd.kind} ${bd.metadata.name} names a rendered ${bd.roleRef.kind}`);
    return rules(role).map((r) => ({ where, r }));
  });
  const scopeNamespace = { Cluster: '*', KubeVirtNamespace: 'kubevirt', TargetNamespace: 'vms' } as const;
  for (const p of PEER_CLUSTER_PERMISSIONS) {
    const ns = scopeNamespace[p.scope];
    for (const verb of p.verbs) {
      for (const name of p.names ?? [undefined]) {
        assert.ok(granted.some(({ where, r }) => (where === '*' || where === ns) && (r.apiGroups ?? []).includes(p.group) && (r.resources ?? []).includes(p.resource) && r.verbs.includes(verb)
          && (!r.resourceNames || (name !== undefined && r.resourceNames.includes(name)))),
        `the peer role lacks ${verb} ${p.resource}${p.group ? `.${p.group}` : ''}${name ? `/${name}` : ''} in ${ns === '*' ? 'the cluster' : `namespace ${ns}`} (${p.why})`);
      }
    }
  }
  // The target namespaces' rights, reads included, are granted there only, not cluster-wide (that
  // is rbac.clusterWideVMData): VM specs elsewhere can carry inline cloud-init data.
  for (const p of PEER_CLUSTER_PERMISSIONS.filter((x) => x.scope === 'TargetNamespace')) {
    for (const verb of p.verbs) {
      assert.ok(!granted.some(({ where, r }) => where === '*' && (r.apiGroups ?? []).includes(p.group) && (r.resources ?? []).includes(p.resource) && r.verbs.includes(verb)),
        `the peer may ${verb} ${p.resource}${p.group ? `.${p.group}` : ''} in every namespace`);
    }
  }
});
