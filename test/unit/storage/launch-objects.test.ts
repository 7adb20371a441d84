// What the operator launches for a pre-copy: names, labels the controller cleans up by, and Pods
// that run with least privilege and carry no user-written string but the claim names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WanMigration } from '../../../src/api/wanmigration.ts';
import { MANAGED_BY_LABEL, MIGRATION_LABEL } from '../../../src/controller/names.ts';
import { MIGRATION_NAME_LABEL, MIGRATION_NAMESPACE_LABEL } from '../../../src/controller/target-objects.ts';
import { diskClaims } from '../../../src/storage/launch/disks.ts';
import {
  LABELS, names, ownerOf, sourceAgentPod, targetAgentPod, targetDataVolume, targetPVC, type Disk,
} from '../../../src/storage/launch/objects.ts';

const wm: WanMigration = {
  metadata: { name: 'mig', namespace: 'tenant', uid: '12345678-9abc-4def-8123-456789abcdef', annotations: { 'cloudnet.io/storage-agent': 'http://evil/' } },
  spec: { vmName: 'vm', targetSite: 'site-b', targetNamespace: 'tenant-b', storage: { mode: 'CloudNetPreCopy', storageClassMap: { fast: 'fast-b' } } },
};
const fs: Disk = { claim: 'vm-root', index: 0, capacity: '10Gi', volumeMode: 'Filesystem', accessModes: ['ReadWriteOnce'], storageClassName: 'fast' };
const block: Disk = { ...fs, claim: 'vm-data', index: 1, volumeMode: 'Block', storageClassName: 'slow' };
const img = { image: 'cloudnet/operator:0.1.0' };
const owner = ownerOf({ apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', metadata: wm.metadata });

test('labels are the controller\'s own (it cleans up by them)', () => {
  assert.equal(LABELS.migrationUID, MIGRATION_LABEL);
  assert.equal(LABELS.migrationName, MIGRATION_NAME_LABEL);
  assert.equal(LABELS.migrationNamespace, MIGRATION_NAMESPACE_LABEL);
  assert.equal(LABELS.managedBy, MANAGED_BY_LABEL);
});

test('names derive from the migration UID', () => {
  assert.equal(names.operatorSecret(wm), 'cloudnet-agents-123456789a');
  assert.equal(names.agentPod(wm, 'source', block), 'cloudnet-agent-123456789a-src-1');
  assert.equal(names.agentSecret(wm, 'target'), 'cloudnet-agent-123456789a-tgt');
});

test('the target volume: same size, mode and access, mapped class; its DataVolume adopts it', () => {
  const pvc = targetPVC(wm, 'tenant-b', fs) as { spec: Record<string, unknown>; metadata: { annotations: Record<string, string>; labels: Record<string, string> } };
  assert.deepEqual(pvc.spec, { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', resources: { requests: { storage: '10Gi' } }, storageClassName: 'fast-b' });
  assert.equal(pvc.metadata.annotations['cdi.kubevirt.io/storage.populatedFor'], 'vm-root');
  assert.equal(pvc.metadata.labels[MIGRATION_LABEL], wm.metadata.uid);
  const dv = targetDataVolume(wm, 'tenant-b', block) as { spec: { storage: Record<string, unknown> }; metadata: { annotations: Record<string, string> } };
  assert.equal(dv.metadata.annotations['cdi.kubevirt.io/storage.prePopulated'], 'vm-data');
  assert.equal(dv.spec.storage.storageClassName, 'slow', 'an unmapped class keeps its name');
});

type PodShape = { spec: { nodeName?: string; automountServiceAccountToken: boolean; securityContext: Record<string, unknown>; volumes: Array<Record<string, unknown>>; containers: Array<Record<string, unknown> & { args: string[]; securityContext: Record<string, unknown> }> } };

test('agent Pods: least privilege, the VM\'s node and a read-only claim for the source, no user string in their args', () => {
  const s = sourceAgentPod(wm, 'tenant', fs, img, owner, 'node-7', '192.0.2.44') as unknown as PodShape;
  assert.equal(s.spec.nodeName, 'node-7');
  assert.deepEqual(s.spec.volumes[0], { name: 'disk', persistentVolumeClaim: { claimName: 'vm-root', readOnly: true } });
  assert.equal(s.spec.automountServiceAccountToken, false);
  assert.equal(s.spec.securityContext.runAsNonRoot, true);
  const c = s.spec.containers[0];
  assert.deepEqual(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  assert.deepEqual(c.args, ['agent', 'source', '--disk', '/volume/disk.img', '--target', '192.0.2.44:9470', '--target-http', 'https://192.0.2.44:9471',
    '--http', '$(POD_IP):9471', '--credentials', '/credentials', '--work-dir', '/work']);
  const t = targetAgentPod(wm, 'tenant-b', block, img, owner) as unknown as PodShape;
  assert.equal(t.spec.nodeName, undefined);
  assert.deepEqual(t.spec.containers[0].volumeDevices, [{ name: 'disk', devicePath: '/dev/cloudnet-disk' }]);
  assert.ok(t.spec.containers[0].args.includes('/dev/cloudnet-disk'));
  for (const p of [s, t]) assert.ok(!JSON.stringify(p).includes('evil'));
});

test('diskClaims: DataVolume and PVC volumes, in order, once each', () => {
  const vm = { spec: { template: { spec: { volumes: [
    { name: 'a', dataVolume: { name: 'vm-root' } }, { name: 'ci', cloudInitNoCloud: {} }, { name: 'b', persistentVolumeClaim: { claimName: 'vm-data' } }, { name: 'c', dataVolume: { name: 'vm-root' } },
  ] } } } };
  assert.deepEqual(diskClaims(vm), ['vm-root', 'vm-data']);
});
