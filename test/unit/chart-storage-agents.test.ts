// The chart's storageAgents switch (issue 13): off by default (no Pod rights, no agent image for
// the operator); on, the operator gets its own image as CLOUDNET_AGENT_IMAGE and Pod/PVC rights in
// rbac.vmDataNamespaces only, cluster-wide only with the explicit opt-in rbac.clusterWideVMData.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { helmTemplate } from '../../hack/packaging.ts';
import { parseSeedAddrSetting } from '../../src/operator/controllers.ts';

interface Obj { kind: string; metadata: { name: string; namespace?: string }; rules?: Array<{ resources?: string[]; verbs: string[] }>; spec?: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } } }

const render = (...set: string[]) => (yaml.loadAll(helmTemplate('t', 'cloudnet-system', set)) as Obj[]).filter(Boolean);
const env = (docs: Obj[]) => Object.fromEntries(docs.find((d) => d.kind === 'Deployment')!.spec!.template.spec.containers[0].env.map((e) => [e.name, e.value]));
const podRights = (docs: Obj[], kind: string) => docs.filter((d) => d.kind === kind).flatMap((d) => (d.rules ?? []).filter((r) => (r.resources ?? []).includes('pods')).map((r) => `${d.metadata.namespace ?? '*'}:${r.verbs.join(',')}`));

test('off by default: no agent image, no Pod rights', () => {
  const docs = render();
  assert.equal(env(docs).CLOUDNET_AGENT_IMAGE, undefined);
  assert.deepEqual([...podRights(docs, 'ClusterRole'), ...podRights(docs, 'Role')], []);
});

test('on: the operator\'s own image for the agents, Pod rights per vmDataNamespace, cluster-wide only on opt-in', () => {
  const docs = render('storageAgents.enabled=true', 'storageAgents.relaySeedAddr=site-b=198.51.100.2:7401', 'image.tag=1.2.3');
  const e = env(docs);
  assert.equal(e.CLOUDNET_AGENT_IMAGE, 'ghcr.io/cloudnet-io/cloudnet:1.2.3');
  assert.equal(e.CLOUDNET_RELAY_SEED_ADDR, 'site-b=198.51.100.2:7401');
  assert.equal(parseSeedAddrSetting(e.CLOUDNET_RELAY_SEED_ADDR!)('site-b'), '198.51.100.2:7401');
  // No vmDataNamespaces: no Pod or PVC write rights anywhere (not cluster-wide: that is near cluster-admin).
  assert.deepEqual([...podRights(docs, 'ClusterRole'), ...podRights(docs, 'Role')], []);
  const pvcWrites = (d: Obj[]) => d.filter((x) => x.kind === 'ClusterRole').flatMap((x) => (x.rules ?? []).filter((r) => (r.resources ?? []).includes('persistentvolumeclaims') && r.verbs.some((v) => v !== 'get')));
  assert.deepEqual(pvcWrites(docs), []);
  const confined = render('storageAgents.enabled=true', 'rbac.vmDataNamespaces={vms,kubevirt}');
  assert.deepEqual(podRights(confined, 'ClusterRole'), []);
  assert.deepEqual(pvcWrites(confined), []);
  assert.deepEqual(podRights(confined, 'Role').sort(), ['kubevirt:get,list,create,delete', 'vms:get,list,create,delete']);
  const wide = render('storageAgents.enabled=true', 'rbac.clusterWideVMData=true');
  assert.deepEqual(podRights(wide, 'ClusterRole'), ['*:get,list,create,delete']);
  assert.deepEqual(podRights(render('rbac.clusterWideVMData=true'), 'ClusterRole'), [], 'the opt-in alone grants no Pods');
});

test('on: the migrations\' agent credentials can be kept in the release namespace (create, patch, delete Secrets there only)', () => {
  // The operator's own Roles and ClusterRoles (the gateway has its own account and Role).
  const secretWrites = (docs: Obj[]) => docs.filter((d) => (d.kind === 'Role' || d.kind === 'ClusterRole') && d.metadata.name === 't-cloudnet')
    .flatMap((d) => (d.rules ?? []).filter((r) => (r.resources ?? []).includes('secrets') && r.verbs.some((v) => ['create', 'patch', 'delete'].includes(v)))
      .map((r) => `${d.kind}:${d.metadata.namespace ?? '*'}:${r.verbs.join(',')}`));
  assert.deepEqual(secretWrites(render()), [], 'off: no Secret writes');
  assert.deepEqual(secretWrites(render('storageAgents.enabled=true')), ['Role:cloudnet-system:create,patch,delete']);
});

test('a bad seed address is refused by the schema', () => {
  assert.throws(() => render('storageAgents.relaySeedAddr=http://evil/'));
});
