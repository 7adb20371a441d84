// The tenancy rules (src/api/tenancy.ts): which target namespaces a Site accepts, and which label
// and annotation keys are copied to the target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copiedMetadata, isCopiedMetadataKey, targetNamespaceAllowed, METADATA_COPY_RULE } from '../../../src/api/tenancy.ts';
import { wanMigrationCRD, siteCRD } from '../../../src/api/crds.ts';

test('without allowedNamespaces only the WanMigration\'s own namespace is accepted', () => {
  assert.equal(targetNamespaceAllowed(undefined, 'team-a', 'team-a'), true);
  assert.equal(targetNamespaceAllowed(undefined, 'team-a', 'team-b'), false);
  assert.equal(targetNamespaceAllowed([], 'team-a', 'kube-system'), false);
  assert.equal(targetNamespaceAllowed([], 'team-a', 'team-a'), true);
});

test('a set allowedNamespaces is authoritative, exact names only', () => {
  assert.equal(targetNamespaceAllowed(['shared'], 'team-a', 'shared'), true);
  assert.equal(targetNamespaceAllowed(['shared'], 'team-a', 'team-a'), false, 'the own namespace must be listed too');
  assert.equal(targetNamespaceAllowed(['shared'], 'team-a', 'shared-2'), false);
  assert.equal(targetNamespaceAllowed(['team-*'], 'team-a', 'team-b'), false, 'no patterns');
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
  assert.equal(allowed?.items?.maxLength, 63);
});
