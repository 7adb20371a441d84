// The tenancy rules (src/api/tenancy.ts): which target namespaces a Site accepts, and which label
// and annotation keys are copied to the target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copiedMetadata, isCopiedMetadataKey, targetNamespaceAllowed, METADATA_COPY_RULE } from '../../../src/api/tenancy.ts';
import { wanMigrationCRD, siteCRD } from '../../../src/api/crds.ts';

test('without allowedNamespaces only the WanMigration\'s own namespace is accepted', () => {
  assert.equal(targetNamespaceAllowed({}, 'team-a', 'team-a'), true);
  assert.equal(targetNamespaceAllowed({}, 'team-a', 'team-b'), false);
  assert.equal(targetNamespaceAllowed({ allowedNamespaces: [] }, 'team-a', 'kube-system'), false);
  assert.equal(targetNamespaceAllowed({ allowedNamespaces: [] }, 'team-a', 'team-a'), true);
});

test('a set allowedNamespaces is authoritative, exact names only', () => {
  const only = (allowedNamespaces: string[]) => ({ allowedNamespaces });
  assert.equal(targetNamespaceAllowed(only(['shared']), 'team-a', 'shared'), true);
  assert.equal(targetNamespaceAllowed(only(['shared']), 'team-a', 'team-a'), false, 'the own namespace must be listed too');
  assert.equal(targetNamespaceAllowed(only(['shared']), 'team-a', 'shared-2'), false);
  assert.equal(targetNamespaceAllowed(only(['team-*']), 'team-a', 'team-b'), false, 'no patterns');
});

test('allowedNamespacesBySource narrows the list per source namespace: one tenant cannot land in another\'s namespace', () => {
  const site = {
    allowedNamespaces: ['team-a', 'team-b', 'shared'],
    allowedNamespacesBySource: [{ sourceNamespace: 'team-a', targetNamespaces: ['team-a', 'shared'] }, { sourceNamespace: 'team-b', targetNamespaces: ['team-b', 'elsewhere'] }],
  };
  assert.equal(targetNamespaceAllowed(site, 'team-a', 'team-a'), true);
  assert.equal(targetNamespaceAllowed(site, 'team-a', 'shared'), true);
  assert.equal(targetNamespaceAllowed(site, 'team-a', 'team-b'), false, 'listed in allowedNamespaces, not for team-a');
  assert.equal(targetNamespaceAllowed({ allowedNamespaces: site.allowedNamespaces }, 'team-a', 'team-b'), true, 'without the narrowing, the flat list lets it');
  assert.equal(targetNamespaceAllowed(site, 'team-b', 'elsewhere'), false, 'an entry cannot widen allowedNamespaces');
  assert.equal(targetNamespaceAllowed(site, 'team-c', 'shared'), false, 'no entry: nothing');
  const own = { allowedNamespacesBySource: [{ sourceNamespace: 'team-a', targetNamespaces: ['team-a', 'team-b'] }] };
  assert.equal(targetNamespaceAllowed(own, 'team-a', 'team-a'), true);
  assert.equal(targetNamespaceAllowed(own, 'team-a', 'team-b'), false, 'without allowedNamespaces only the own namespace lands');
  assert.equal(targetNamespaceAllowed(own, 'team-b', 'team-b'), false);
});

test('system keys are never copied; everything else is', () => {
  const never = [
    'kubernetes.io/hostname', 'k8s.io/x', 'kubevirt.io/domain', 'cdi.kubevirt.io/storage.usePopulator', 'cloudnet.io/migration-uid',
    'argocd.argoproj.io/instance', 'kubectl.kubernetes.io/last-applied-configuration',
  ];
  const copied = ['app', 'team', 'app.kubernetes.io/name', 'vm.kubevirt.io/template', 'example.com/owner', 'kubectl.kubernetes.io/restartedAt', 'mykubernetes.io/x'];
  for (const k of never) assert.equal(isCopiedMetadataKey(k), false, k);
  for (const k of copied) assert.equal(isCopiedMetadataKey(k), true, k);
  assert.deepEqual(copiedMetadata({ app: 'db', 'kubevirt.io/domain': 'x', 'cloudnet.io/migration-uid': 'u' }), { app: 'db' });
  assert.deepEqual(copiedMetadata(undefined), {});
});

test('the rules are documented in the CRDs (kubectl explain)', () => {
  const wmSpec = wanMigrationCRD().spec.versions[0].schema.openAPIV3Schema.properties?.spec;
  assert.ok(wmSpec?.description?.includes(METADATA_COPY_RULE));
  assert.match(wmSpec?.properties?.targetNamespace?.description ?? '', /allowedNamespaces/);
  const allowed = siteCRD().spec.versions[0].schema.openAPIV3Schema.properties?.spec?.properties?.allowedNamespaces;
  assert.match(allowed?.description ?? '', /TargetNamespaceNotAllowed/);
  const bySource = siteCRD().spec.versions[0].schema.openAPIV3Schema.properties?.spec?.properties?.allowedNamespacesBySource;
  assert.match(bySource?.description ?? '', /TargetNamespaceNotAllowed/);
  assert.deepEqual(bySource?.['x-kubernetes-list-map-keys'], ['sourceNamespace']);
  assert.equal(allowed?.items?.maxLength, 63);
});
