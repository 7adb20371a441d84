// The Helm chart, rendered by the real Go-built helm (no cluster needed): lint, defaults, value
// switches, schema rejection, least-privilege RBAC, CRDs identical to crds/, and the plain
// manifests under config/ generated from it. test/integration/helm.test.ts installs it for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import yaml from 'js-yaml';
import { cachedTool, chartDir, helmTemplate, KUBE_VERSION, OPERATOR_ONLY, renderAll, repoRoot, runHelm } from '../../hack/packaging.ts';
import { parseRelayApiSetting } from '../../src/operator/relay-client/relay-config.ts';

interface Meta { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface K8sObject { apiVersion: string; kind: string; metadata: Meta; [k: string]: unknown }
interface PolicyRule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
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
/** With the chart's defaults: operator, site data plane and peer access. */
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
/** group/resource → sorted verbs, merging rules so the assertion does not depend on how rules are grouped. */
function grants(rs: PolicyRule[]): Record<string, string> {
  const m: Record<string, Set<string>> = {};
  for (const r of rs) for (const g of r.apiGroups) for (const res of r.resources) {
    const k = `${g || 'core'}/${res}`;
    m[k] ??= new Set();
    for (const v of r.verbs) m[k].add(v);
  }
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort().join(',')]));
}

const CRUD = 'create,delete,get,list,patch,update,watch';

describe('charts/cloudnet', () => {
  it('passes helm lint --strict, with defaults and with every optional part on', () => {
    const everything = ['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'rbac.vmDataNamespaces={vms}', '--set',
      'gateway.enabled=true,gateway.site=a,gateway.peers[0].site=b,gateway.peers[0].interface=cn-b,gateway.peers[0].tunnelAddress=198.18.10.1/24'];
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

  it('renders the operator alone with gateway and peerAccess off', () => {
    const kinds = render().map((d) => `${d.kind}/${d.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ClusterRole/t-cloudnet', 'ClusterRole/t-cloudnet-editor', 'ClusterRole/t-cloudnet-viewer',
      'ClusterRoleBinding/t-cloudnet',
      'CustomResourceDefinition/sites.cloudnet.io', 'CustomResourceDefinition/wanmigrations.cloudnet.io',
      'Deployment/t-cloudnet', 'PodDisruptionBudget/t-cloudnet', 'Role/t-cloudnet', 'RoleBinding/t-cloudnet',
      'Service/t-cloudnet-metrics', 'ServiceAccount/t-cloudnet',
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
      '--retry-period=2s', '--metrics-bind-address=:8080', '--health-probe-bind-address=:8081', '--max-concurrent-reconciles=1', '--graceful-shutdown-timeout=25s']);
    // The operator must finish its graceful shutdown before the kubelet's SIGKILL.
    assert.ok(25 < (d.spec.template.spec as unknown as { terminationGracePeriodSeconds: number }).terminationGracePeriodSeconds);
    const podNs = c.env.find((e) => e.name === 'POD_NAMESPACE');
    assert.equal(podNs?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
    assert.deepEqual(c.ports.map((p) => [p.name, p.containerPort]), [['metrics', 8080], ['health', 8081]]);
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
    assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[8080, 'metrics']]);
    assert.ok(only(docs, 'PodDisruptionBudget'));
  });

  it('grants least privilege: no wildcards, Secrets watched only in its own namespace', () => {
    const docs = render();
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of rules(d)) {
        for (const v of [...r.apiGroups, ...r.resources, ...r.verbs]) assert.ok(!v.includes('*'), `${d.kind} ${d.metadata.name} has a wildcard: ${JSON.stringify(r)}`);
      }
    }
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet'))), {
      'cdi.kubevirt.io/datavolumes': CRUD,
      'cloudnet.io/sites': 'get,list,patch,update,watch',
      'cloudnet.io/sites/finalizers': 'update',
      'cloudnet.io/sites/status': 'get,patch,update',
      'cloudnet.io/wanmigrations': 'get,list,patch,update,watch',
      'cloudnet.io/wanmigrations/finalizers': 'update',
      'cloudnet.io/wanmigrations/status': 'get,patch,update',
      'core/configmaps': 'create,delete,get,list,patch,update',
      'core/events': 'create,patch',
      'core/namespaces': 'get',
      'core/persistentvolumeclaims': 'get',
      'core/secrets': 'create,delete,get,list,patch,update',
      'events.k8s.io/events': 'create,patch',
      'kubevirt.io/kubevirts': 'get,list,watch',
      'kubevirt.io/virtualmachineinstancemigrations': CRUD,
      'kubevirt.io/virtualmachineinstances': 'get,list,watch',
      'kubevirt.io/virtualmachines': CRUD,
    });
    const role = only(docs, 'Role');
    assert.equal(role.metadata.namespace, 'cloudnet-system');
    assert.deepEqual(grants(rules(role)), { 'coordination.k8s.io/leases': 'create,get,update', 'core/configmaps': 'get', 'core/secrets': 'get,list,watch' });
    const crb = only<K8sObject & { subjects: { kind: string; name: string; namespace: string }[] }>(docs, 'ClusterRoleBinding');
    assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 't-cloudnet', namespace: 'cloudnet-system' }]);
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

  it('follows values: replicas, leader election, ServiceMonitor, PDB', () => {
    assert.equal(only<Deployment>(render('replicaCount=3'), 'Deployment').spec.replicas, 3);
    const single = render('replicaCount=1');
    assert.equal(single.filter((d) => d.kind === 'PodDisruptionBudget').length, 0, 'no PDB for a single replica');
    const noLe = render('leaderElection.enabled=false');
    assert.ok(!only<Deployment>(noLe, 'Deployment').spec.template.spec.containers[0].args.includes('--leader-elect'));
    assert.equal(grants(rules(only(noLe, 'Role')))['coordination.k8s.io/leases'], undefined);
    assert.equal(render().filter((d) => d.kind === 'ServiceMonitor').length, 0, 'ServiceMonitor is off by default');
    const sm = only<K8sObject & { spec: { endpoints: { port: string }[] } }>(render('metrics.serviceMonitor.enabled=true'), 'ServiceMonitor');
    assert.equal(sm.spec.endpoints[0].port, 'metrics');
    const digest = `sha256:${'a'.repeat(64)}`;
    const pinned = only<Deployment>(render(`image.digest=${digest}`), 'Deployment').spec.template.spec.containers[0];
    assert.equal(pinned.image, `ghcr.io/cloudnet-io/cloudnet@${digest}`);
    const confined = render('rbac.vmDataNamespaces={vms,kubevirt}');
    const clusterWide = grants(rules(only(confined, 'ClusterRole', 't-cloudnet')));
    assert.equal(clusterWide['core/secrets'], undefined, 'no cluster-wide Secret rights when namespaces are listed');
    assert.equal(clusterWide['core/configmaps'], undefined);
    for (const ns of ['vms', 'kubevirt']) {
      const role = confined.find((d) => d.kind === 'Role' && d.metadata.namespace === ns);
      assert.ok(role, `Role in ${ns}`);
      assert.deepEqual(grants(rules(role)), { 'core/configmaps': 'create,delete,get,list,patch,update', 'core/secrets': 'create,delete,get,list,patch,update' });
      const binding = only<K8sObject & { subjects: { name: string; namespace: string }[] }>(confined.filter((d) => d.metadata.namespace === ns), 'RoleBinding');
      assert.deepEqual(binding.subjects.map((x) => `${x.namespace}/${x.name}`), ['cloudnet-system/t-cloudnet']);
    }
  });

  it('renders one locked-down host-network gateway per peer when gateway.enabled', () => {
    const docs = render('gateway.enabled=true', 'gateway.site=site-a', 'gateway.relay.enabled=false',
      'gateway.peers[0].site=site-b', 'gateway.peers[0].interface=cn-b', 'gateway.peers[0].tunnelAddress=198.18.10.1/24', 'gateway.peers[0].networks={192.0.2.0/24}',
      'gateway.peers[1].site=site-c', 'gateway.peers[1].interface=cn-c', 'gateway.peers[1].tunnelAddress=198.18.11.1/24', 'gateway.peers[1].listenPort=51821');
    const gws = docs.filter((d) => d.kind === 'Deployment' && d.metadata.labels?.['app.kubernetes.io/component'] === 'gateway') as (Deployment & { spec: { template: { spec: { hostNetwork: boolean; volumes: { hostPath?: { path: string } }[] } } } })[];
    assert.deepEqual(gws.map((d) => d.metadata.name), ['t-cloudnet-gateway-site-b', 't-cloudnet-gateway-site-c']);
    const [b] = gws;
    const c = b.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['gateway', '--kube', '--site=site-a', '--peer-site=site-b', '--interface=cn-b', '--tunnel-address=198.18.10.1/24',
      '--namespace=cloudnet-system', '--listen-port=51820', '--metrics-port=9478', '--node-address=$(NODE_IP)', '--network=192.0.2.0/24']);
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
    assert.deepEqual(grants(rules(only(docs.filter((d) => d.metadata.namespace === 'cloudnet-system'), 'Role', 't-cloudnet-gateway'))),
      { 'core/configmaps': 'create,get,patch,update', 'core/secrets': 'create,get,list,update,watch' });
    const events = only(docs, 'Role', 't-cloudnet-gateway-events');
    assert.equal(events.metadata.namespace, 'default');
    assert.deepEqual(grants(rules(events)), { 'core/events': 'create,patch' });
    assert.equal(render().filter((d) => d.metadata.name.includes('gateway')).length, 0, 'no gateway by default');
  });

  it('with defaults renders the site data plane: gateway with the relay pair, route agent, peer access', () => {
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
    // Peer access: what peers may do here, confined; no wildcard anywhere.
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-peer'))), { 'core/namespaces': 'get' });
    assert.deepEqual(grants(rules(only(docs, 'ClusterRole', 't-cloudnet-peer-vmdata'))), {
      'cdi.kubevirt.io/datavolumes': 'create,delete,get,list', 'core/configmaps': 'create,delete,get,list', 'core/secrets': 'create,delete,get,list',
      'kubevirt.io/virtualmachineinstancemigrations': 'create,delete,get', 'kubevirt.io/virtualmachineinstances': 'get', 'kubevirt.io/virtualmachines': 'create,delete,get,list',
    });
    const vmdata = only<K8sObject & { roleRef: { kind: string; name: string } }>(docs, 'RoleBinding', 't-cloudnet-peer-vmdata');
    assert.equal(vmdata.metadata.namespace, 'default', 'per listed namespace, not cluster-wide');
    assert.equal(docs.filter((d) => d.kind === 'ClusterRoleBinding' && d.metadata.name === 't-cloudnet-peer-vmdata').length, 0);
    assert.equal(only(docs, 'Role', 't-cloudnet-peer').metadata.namespace, 'kubevirt');
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of rules(d)) for (const v of [...r.apiGroups, ...r.resources, ...r.verbs]) assert.ok(!v.includes('*'), `${d.metadata.name}: wildcard`);
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
      ['gateway.site=', /'\/gateway\/site': minLength/],
      ['leaderElection.leaseDuration=1m30s', /'\/leaderElection\/leaseDuration'/],
      ['operator.maxConcurrentReconciles=0', /'\/operator\/maxConcurrentReconciles'/],
      ['gateway.peers[0].site=b', /'\/gateway\/peers\/0': missing propert/],
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
