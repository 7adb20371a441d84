import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { resolveSpec } from '../../../src/api/wanmigration.ts';
import {
  blankDataVolume, sameContent, receiverVM, runStrategyOf, sourceVMIM, targetVMIM, volumeRefs, copyObject,
} from '../../../src/controller/target-objects.ts';
import { migrationNames } from '../../../src/controller/names.ts';
import { wm } from './fixtures.ts';

const vm: V1VirtualMachine = {
  apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine',
  metadata: { name: 'vm-a', namespace: 'default', labels: { app: 'db' }, uid: 'src-uid', resourceVersion: '5' },
  spec: {
    runStrategy: 'Always',
    dataVolumeTemplates: [{ metadata: { name: 'vm-a-root' }, spec: { storage: { resources: { requests: { storage: '1Gi' } } } } }],
    template: { spec: { domain: { devices: {} }, volumes: [
      { name: 'root', dataVolume: { name: 'vm-a-root' } },
      { name: 'data', persistentVolumeClaim: { claimName: 'vm-a-data' } },
      { name: 'ci', cloudInitNoCloud: { secretRef: { name: 'ci-secret' }, networkDataSecretRef: { name: 'net-secret' } } },
      { name: 'cfg', configMap: { name: 'app-config' } },
      { name: 'tls', secret: { secretName: 'ci-secret' } },
    ] } },
  },
};

test('volumeRefs finds disks, secrets (deduplicated) and configmaps', () => {
  assert.deepEqual(volumeRefs(vm), {
    disks: [{ name: 'vm-a-root', kind: 'DataVolume' }, { name: 'vm-a-data', kind: 'PVC' }],
    secrets: ['ci-secret', 'net-secret'],
    configMaps: ['app-config'],
    serviceAccounts: [],
  });
});

test('volumeRefs also finds the Secrets of access credentials and sysprep, and the mounted ServiceAccounts', () => {
  const v = structuredClone(vm);
  const t = v.spec.template.spec!;
  t.accessCredentials = [
    { sshPublicKey: { source: { secret: { secretName: 'ssh-keys' } }, propagationMethod: { noCloud: {} } } },
    { userPassword: { source: { secret: { secretName: 'passwords' } }, propagationMethod: { qemuGuestAgent: {} } } },
  ];
  t.volumes = [...t.volumes!, { name: 'sp', sysprep: { secret: { name: 'unattend' } } }, { name: 'sp2', sysprep: { configMap: { name: 'autounattend' } } }, { name: 'sa', serviceAccount: { serviceAccountName: 'builder' } }];
  const r = volumeRefs(v);
  assert.deepEqual(r.secrets, ['ci-secret', 'net-secret', 'passwords', 'ssh-keys', 'unattend']);
  assert.deepEqual(r.configMaps, ['app-config', 'autounattend']);
  assert.deepEqual(r.serviceAccounts, ['builder']);
});

test('receiver VM: WaitAsReceiver, restore annotation, our labels, no templates, no server fields', () => {
  const w = wm({ targetNamespace: 'prod' });
  const r = receiverVM(vm, w, resolveSpec(w.spec));
  assert.equal(r.spec.runStrategy, 'WaitAsReceiver');
  assert.equal(r.metadata?.annotations?.['kubevirt.io/restore-run-strategy'], 'Always');
  assert.equal(r.metadata?.namespace, 'prod');
  assert.equal(r.metadata?.labels?.app, 'db');
  assert.equal(r.metadata?.labels?.['cloudnet.io/migration-uid'], w.metadata.uid);
  assert.equal(r.spec.dataVolumeTemplates, undefined);
  assert.equal(r.metadata?.uid, undefined);
  assert.equal(r.metadata?.resourceVersion, undefined);
  assert.equal(vm.spec.runStrategy, 'Always', 'source object not mutated');
});

test('runStrategyOf maps the legacy running flag', () => {
  assert.equal(runStrategyOf({ spec: { running: true, template: {} } }), 'Always');
  assert.equal(runStrategyOf({ spec: { running: false, template: {} } }), 'Halted');
  assert.equal(runStrategyOf({ spec: { runStrategy: 'RerunOnFailure', template: {} } }), 'RerunOnFailure');
});

test('blank DataVolume maps the storage class', () => {
  const w = wm({ storage: { storageClassMap: { 'local-path': 'fast' }, defaultStorageClass: 'std' } });
  const s = resolveSpec(w.spec);
  const dv = blankDataVolume({ name: 'd', storage: '2Gi', storageClassName: 'local-path', accessModes: ['ReadWriteOnce'] }, w, s) as { spec: { source: unknown; storage: { storageClassName: string; resources: unknown } }; metadata: { annotations: Record<string, string> } };
  assert.deepEqual(dv.spec.source, { blank: {} });
  assert.equal(dv.spec.storage.storageClassName, 'fast');
  assert.equal(dv.metadata.annotations['cdi.kubevirt.io/storage.usePopulator'], 'true');
  const other = blankDataVolume({ name: 'd', storage: '2Gi', storageClassName: 'other' }, w, s) as { spec: { storage: { storageClassName: string } } };
  assert.equal(other.spec.storage.storageClassName, 'std');
});

test('VMIM pair shares the migrationID; receive on the target, sendTo on the source', () => {
  const w = wm();
  const s = resolveSpec(w.spec);
  const t = targetVMIM(w, s);
  const src = sourceVMIM(w, s, '192.0.2.1:9185');
  const n = migrationNames(w);
  assert.equal(n.migrationID, w.metadata.uid);
  assert.deepEqual(t.spec, { receive: { migrationID: n.migrationID }, vmiName: 'vm-a' });
  assert.deepEqual(src.spec, { sendTo: { connectURL: '192.0.2.1:9185', migrationID: n.migrationID }, vmiName: 'vm-a' });
  assert.notEqual(t.metadata?.name, src.metadata?.name);
  assert.deepEqual(migrationNames(w), n, 'deterministic');
});

test('copyObject keeps data and type, drops server metadata', () => {
  const w = wm();
  const c = copyObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default', uid: 'x', resourceVersion: '1' }, data: { a: 'Yg==' }, type: 'Opaque' }, w, resolveSpec(w.spec));
  assert.deepEqual(c.metadata?.uid, undefined);
  assert.equal(c.metadata?.namespace, 'default');
  assert.deepEqual((c as { data?: unknown }).data, { a: 'Yg==' });
});

test('a pre-existing Secret/ConfigMap counts as ours only with identical content', () => {
  const src = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { a: 'YQ==', b: 'Yg==' } };
  assert.ok(sameContent(src, { ...src, metadata: { name: 's', uid: 'other', labels: { x: 'y' } }, data: { b: 'Yg==', a: 'YQ==' } }), 'key order and metadata do not matter');
  assert.ok(!sameContent(src, { ...src, data: { a: 'YQ==', b: 'Yw==' } }), 'a changed value is a collision');
  assert.ok(!sameContent(src, { ...src, data: { a: 'YQ==' } }), 'a missing key is a collision');
  assert.ok(!sameContent(src, { ...src, type: 'kubernetes.io/tls' }), 'another type is a collision');
  assert.ok(!sameContent({ kind: 'ConfigMap', data: { k: 'v' } }, { kind: 'ConfigMap', data: { k: 'v' }, binaryData: { k2: 'AA==' } }));
});

test('copies carry the source\'s labels and annotations minus the system keys (api/tenancy.ts), then ours', () => {
  const w = wm();
  const spec = resolveSpec(w.spec);
  const src = structuredClone(vm);
  src.metadata = {
    ...src.metadata,
    labels: { app: 'db', 'app.kubernetes.io/name': 'db', 'kubevirt.io/domain': 'x', 'cloudnet.io/migration-uid': 'forged', 'argocd.argoproj.io/instance': 'prod' },
    annotations: { note: 'kept', 'kubectl.kubernetes.io/last-applied-configuration': '{}', 'kubevirt.io/restore-run-strategy': 'Manual' },
  };
  const r = receiverVM(src, w, spec);
  assert.deepEqual(Object.keys(r.metadata?.labels ?? {}).sort(), [
    'app', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'cloudnet.io/migration-name', 'cloudnet.io/migration-namespace', 'cloudnet.io/migration-uid',
  ]);
  assert.equal(r.metadata?.labels?.['cloudnet.io/migration-uid'], w.metadata.uid, 'a forged ownership label never survives');
  assert.deepEqual(r.metadata?.annotations, { note: 'kept', 'kubevirt.io/restore-run-strategy': 'Always', 'cloudnet.io/migration-name': 'mig' });
  const secret = copyObject({
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: 's', namespace: 'default', labels: { team: 'a', 'k8s.io/x': 'y' }, annotations: { 'kubernetes.io/service-account.name': 'sa', owner: 'me' } },
    data: {},
  }, w, spec);
  const md = secret.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
  assert.equal(md.labels.team, 'a');
  assert.equal(md.labels['k8s.io/x'], undefined);
  assert.deepEqual(md.annotations, { owner: 'me', 'cloudnet.io/migration-name': 'mig' });
});
