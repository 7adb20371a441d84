// The rights the operator needs in a peer cluster, expanded into access checks per namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeAccessCheck, peerAccessChecks, PEER_CLUSTER_PERMISSIONS, targetNamespaceAccessChecks } from '../../../src/api/peer-permissions.ts';

// A permission limited to named objects is asked once per name and verb.
const count = (p: { verbs: readonly string[]; names?: readonly string[] }) => p.verbs.length * (p.names?.length ?? 1);
const verbs = PEER_CLUSTER_PERMISSIONS.reduce((n, p) => n + count(p), 0);
const per = (scope: string) => PEER_CLUSTER_PERMISSIONS.filter((p) => p.scope === scope).reduce((n, p) => n + count(p), 0);

test('without allowedNamespaces the Site checks no target rights: each migration asks in its own namespace', () => {
  const checks = peerAccessChecks('kubevirt', undefined);
  assert.equal(checks.length, per('Cluster') + per('KubeVirtNamespace'));
  assert.ok(!checks.some((c) => c.scope === 'TargetNamespace'), 'nothing is asked across all namespaces');
  assert.ok(checks.filter((c) => c.scope === 'KubeVirtNamespace').every((c) => c.namespace === 'kubevirt'));
  const mine = targetNamespaceAccessChecks('team-a');
  assert.equal(mine.length, per('TargetNamespace'));
  assert.ok(mine.every((c) => c.namespace === 'team-a' && c.scope === 'TargetNamespace'));
  assert.ok(mine.some((c) => c.resource === 'virtualmachineinstancemigrations' && c.verb === 'create'));
  assert.ok(mine.some((c) => c.resource === 'virtualmachines' && c.verb === 'watch'), 'the informers there need watch');
  assert.equal(verbs, per('Cluster') + per('KubeVirtNamespace') + per('TargetNamespace'));
});

test('with allowedNamespaces they are checked in each listed namespace (duplicates once)', () => {
  const checks = peerAccessChecks('kv', ['a', 'b', 'a']);
  assert.equal(checks.length, per('Cluster') + per('KubeVirtNamespace') + 2 * per('TargetNamespace'));
  assert.deepEqual([...new Set(checks.filter((c) => c.scope === 'TargetNamespace').map((c) => c.namespace))], ['a', 'b']);
});

test('the CA bundles are asked about by name, as RBAC grants them', () => {
  const named = peerAccessChecks('kubevirt', undefined).filter((c) => c.resource === 'configmaps').map((c) => `${c.verb} ${c.name ?? '*'}`);
  assert.deepEqual(named.sort(), ['create *', 'get kubevirt-ca', 'get kubevirt-external-ca', 'list kubevirt-ca', 'list kubevirt-external-ca',
    'patch kubevirt-external-ca', 'watch kubevirt-ca', 'watch kubevirt-external-ca']);
  const patch = peerAccessChecks('kubevirt', undefined).find((c) => c.verb === 'patch')!;
  assert.equal(describeAccessCheck(patch), 'patch configmaps/kubevirt-external-ca in namespace kubevirt');
});

test('checks are described for the cluster operator', () => {
  const [ns] = peerAccessChecks('kubevirt', undefined).filter((c) => c.resource === 'namespaces');
  assert.equal(describeAccessCheck(ns), 'get namespaces');
  const dv = peerAccessChecks('kubevirt', ['vms']).find((c) => c.resource === 'datavolumes' && c.verb === 'create');
  assert.equal(describeAccessCheck(dv!), 'create datavolumes.cdi.kubevirt.io in namespace vms');
  const vms = targetNamespaceAccessChecks('vms').find((c) => c.resource === 'secrets' && c.verb === 'list');
  assert.equal(describeAccessCheck(vms!), 'list secrets in namespace vms');
});
