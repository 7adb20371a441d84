// The rights the operator needs in a peer cluster, expanded into access checks per namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeAccessCheck, peerAccessChecks, PEER_CLUSTER_PERMISSIONS } from '../../../src/api/peer-permissions.ts';

const verbs = PEER_CLUSTER_PERMISSIONS.reduce((n, p) => n + p.verbs.length, 0);
const per = (scope: string) => PEER_CLUSTER_PERMISSIONS.filter((p) => p.scope === scope).reduce((n, p) => n + p.verbs.length, 0);

test('without allowedNamespaces the target rights are checked across all namespaces', () => {
  const checks = peerAccessChecks('kubevirt', undefined);
  assert.equal(checks.length, verbs);
  assert.ok(checks.filter((c) => c.scope === 'TargetNamespace').every((c) => c.namespace === ''));
  assert.ok(checks.filter((c) => c.scope === 'KubeVirtNamespace').every((c) => c.namespace === 'kubevirt'));
  assert.ok(checks.some((c) => c.resource === 'virtualmachineinstancemigrations' && c.verb === 'create'));
});

test('with allowedNamespaces they are checked in each listed namespace (duplicates once)', () => {
  const checks = peerAccessChecks('kv', ['a', 'b', 'a']);
  assert.equal(checks.length, per('Cluster') + per('KubeVirtNamespace') + 2 * per('TargetNamespace'));
  assert.deepEqual([...new Set(checks.filter((c) => c.scope === 'TargetNamespace').map((c) => c.namespace))], ['a', 'b']);
});

test('checks are described for the cluster operator', () => {
  const [ns] = peerAccessChecks('kubevirt', undefined).filter((c) => c.resource === 'namespaces');
  assert.equal(describeAccessCheck(ns), 'get namespaces');
  const dv = peerAccessChecks('kubevirt', ['vms']).find((c) => c.resource === 'datavolumes' && c.verb === 'create');
  assert.equal(describeAccessCheck(dv!), 'create datavolumes.cdi.kubevirt.io in namespace vms');
  const any = peerAccessChecks('kubevirt', undefined).find((c) => c.resource === 'secrets' && c.verb === 'list');
  assert.equal(describeAccessCheck(any!), 'list secrets in all namespaces');
});
