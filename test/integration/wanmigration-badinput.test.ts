// Bad input: each case yields a Stalled condition with a clear reason and an Event, nothing is
// deleted, and the reconciler does not error (no crash loop). Removing the cause lets it proceed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../env/index.ts';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { WanMigration } from '../../src/api/wanmigration.ts';
import type { RunningOperator } from '../../src/operator/main.ts';
import {
  createVM, ensure, getWM, OPERATOR_NS, reconcileErrors, useOperatorBed, waitForCondition, waitForEvent, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
let op: RunningOperator;
useOperatorBed((b, o) => { bed = b; op = o; });

type VMI = KubeObject & { status?: { phase?: string } };

async function site(name: string, secret: { name: string; kubeconfig?: string } | undefined): Promise<void> {
  if (secret?.kubeconfig !== undefined) {
    await ensure(bed.src, Res.secret, { metadata: { name: secret.name, namespace: OPERATOR_NS }, stringData: { kubeconfig: secret.kubeconfig } });
  }
  await ensure(bed.src, Res.site, { metadata: { name }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: secret?.name ?? `${name}-missing` } } });
}

/** Creates the migration and checks the blocked state: reason on Stalled and Ready, an Event, no start. */
async function expectBlocked(ns: string, name: string, reason: string, spec: Parameters<typeof wanMigration>[2]): Promise<void> {
  await bed.src.create(Res.wanMigration, wanMigration(ns, name, spec));
  const wm = await waitForCondition(bed.src, ns, name, 'Stalled', 'True', reason);
  assert.equal(wm.status?.phase, 'Pending');
  assert.equal(findCondition(wm.status?.conditions, 'Ready')?.reason, reason);
  assert.equal(findCondition(wm.status?.conditions, 'Reconciling')?.status, 'False');
  assert.ok((findCondition(wm.status?.conditions, 'Stalled')?.message ?? '').length > 10, 'message explains');
  assert.equal(wm.status?.migrationID, undefined, 'not started');
  const ev = await waitForEvent(bed.src, ns, name, reason);
  assert.equal(ev.type, 'Warning');
}

async function ns(name: string, target = true): Promise<string> {
  await ensure(bed.src, Res.namespace, { metadata: { name } });
  if (target) await ensure(bed.dst, Res.namespace, { metadata: { name } });
  return name;
}

describe('bad input', () => {
  let errorsBefore = 0;
  test('baseline', async () => { errorsBefore = await reconcileErrors(op); });

  test('missing VM → VMNotFound; creating the VM later lets the migration proceed', async () => {
    const n = await ns('bi-missing');
    await expectBlocked(n, 'mig', 'VMNotFound', { vmName: 'ghost' });
    await createVM(bed.src, n, 'ghost');
    await waitForPhase(bed.src, n, 'mig', 'Succeeded', 60_000); // first in the file: cold clusters, shared CPU
  });

  test('VM not running → VMNotRunning', async () => {
    const n = await ns('bi-stopped');
    await createVM(bed.src, n, 'vm', { runStrategy: 'Halted' });
    await expectBlocked(n, 'mig', 'VMNotRunning', { vmName: 'vm' });
  });

  test('VM not live-migratable → VMNotLiveMigratable', async () => {
    const n = await ns('bi-nolm');
    await createVM(bed.src, n, 'vm', { annotations: { [ANNOTATIONS.liveMigratable]: 'false' } });
    await waitFor(async () => (await bed.src.tryGet<VMI>(Res.vmi, n, 'vm'))?.status?.phase === 'Running', { what: 'VMI running' });
    await expectBlocked(n, 'mig', 'VMNotLiveMigratable', { vmName: 'vm' });
  });

  test('unknown Site → SiteNotFound', async () => {
    const n = await ns('bi-nosite');
    await createVM(bed.src, n, 'vm');
    await expectBlocked(n, 'mig', 'SiteNotFound', { vmName: 'vm', targetSite: 'atlantis' });
  });

  test('missing kubeconfig Secret → KubeconfigSecretNotFound', async () => {
    const n = await ns('bi-nosecret');
    await createVM(bed.src, n, 'vm');
    await site('site-nosecret', undefined);
    await expectBlocked(n, 'mig', 'KubeconfigSecretNotFound', { vmName: 'vm', targetSite: 'site-nosecret' });
  });

  test('invalid kubeconfig → KubeconfigInvalid', async () => {
    const n = await ns('bi-badkc');
    await createVM(bed.src, n, 'vm');
    await site('site-badkc', { name: 'badkc', kubeconfig: 'this: [is not a kubeconfig' });
    await expectBlocked(n, 'mig', 'KubeconfigInvalid', { vmName: 'vm', targetSite: 'site-badkc' });
  });

  test('unreachable target cluster → TargetClusterUnreachable', async () => {
    const n = await ns('bi-unreach');
    await createVM(bed.src, n, 'vm');
    const port = await freePort();
    const kc = bed.b.kubeconfigYaml.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`);
    assert.notEqual(kc, bed.b.kubeconfigYaml);
    await site('site-down', { name: 'down', kubeconfig: kc });
    await expectBlocked(n, 'mig', 'TargetClusterUnreachable', { vmName: 'vm', targetSite: 'site-down' });
  });

  test('missing target namespace → TargetNamespaceNotFound', async () => {
    const n = await ns('bi-nons', false);
    await createVM(bed.src, n, 'vm');
    await expectBlocked(n, 'mig', 'TargetNamespaceNotFound', { vmName: 'vm' });
  });

  test('name collision on the target → TargetNameCollision, the foreign VM is untouched', async () => {
    const n = await ns('bi-collide');
    await createVM(bed.src, n, 'vm');
    await createVM(bed.dst, n, 'vm');
    const before = await bed.dst.get(Res.vm, n, 'vm');
    await expectBlocked(n, 'mig', 'TargetNameCollision', { vmName: 'vm' });
    const afterwards = await bed.dst.get(Res.vm, n, 'vm');
    assert.equal(afterwards.metadata?.uid, before.metadata?.uid);
    // (its status is KubeVirt's to write; spec, labels and annotations are not ours)
    assert.equal(afterwards.metadata?.generation, before.metadata?.generation, 'spec not modified');
    assert.deepEqual(afterwards.metadata?.labels, before.metadata?.labels);
    assert.deepEqual(afterwards.metadata?.annotations, before.metadata?.annotations);
  });

  test('a disk name taken on the target → TargetNameCollision, the foreign DataVolume is untouched', async () => {
    const n = await ns('bi-disk');
    await createVM(bed.src, n, 'vm');
    await ensure(bed.dst, Res.dataVolume, { metadata: { name: 'vm-root', namespace: n }, spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } } });
    const before = await bed.dst.get(Res.dataVolume, n, 'vm-root');
    await expectBlocked(n, 'mig', 'TargetNameCollision', { vmName: 'vm' });
    assert.equal((await bed.dst.get(Res.dataVolume, n, 'vm-root')).metadata?.resourceVersion, before.metadata?.resourceVersion);
  });

  test('a claim with a disk\'s name on the target (no DataVolume) → TargetNameCollision, the claim is untouched', async () => {
    const n = await ns('bi-claim');
    await createVM(bed.src, n, 'vm');
    await ensure(bed.dst, Res.pvc, { metadata: { name: 'vm-root', namespace: n }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    const before = await bed.dst.get(Res.pvc, n, 'vm-root');
    await expectBlocked(n, 'mig', 'TargetNameCollision', { vmName: 'vm' });
    const wm = await bed.src.get<WanMigration & KubeObject>(Res.wanMigration, n, 'mig');
    assert.match(findCondition(wm.status?.conditions, 'Stalled')?.message ?? '', /vm-root \(a PersistentVolumeClaim\)/);
    assert.equal((await bed.dst.get(Res.pvc, n, 'vm-root')).metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.equal(await bed.dst.tryGet(Res.dataVolume, n, 'vm-root'), undefined, 'no DataVolume was created over it');
  });

  test('a Secret with other content on the target → TargetNameCollision, the foreign Secret is untouched', async () => {
    const n = await ns('bi-secret');
    await createVM(bed.src, n, 'vm');
    await ensure(bed.dst, Res.secret, { metadata: { name: 'vm-cloudinit', namespace: n }, stringData: { userdata: '#cloud-config\nssh_authorized_keys: [someone-else]\n' } });
    const before = await bed.dst.get(Res.secret, n, 'vm-cloudinit');
    await expectBlocked(n, 'mig', 'TargetNameCollision', { vmName: 'vm' });
    assert.match(findCondition((await getWM(bed.src, n, 'mig'))?.status?.conditions, 'Stalled')?.message ?? '', /Secret vm-cloudinit/);
    const afterwards = await bed.dst.get(Res.secret, n, 'vm-cloudinit');
    assert.equal(afterwards.metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.equal(await bed.dst.tryGet(Res.vm, n, 'vm'), undefined, 'nothing created on the target');
  });

  test('an identical pre-existing Secret and ConfigMap are used as they are and survive the rollback', async () => {
    const n = await ns('bi-same');
    await createVM(bed.src, n, 'vm');
    await ensure(bed.dst, Res.secret, { metadata: { name: 'vm-cloudinit', namespace: n }, stringData: { userdata: '#cloud-config\n' } });
    await ensure(bed.dst, Res.configMap, { metadata: { name: 'vm-config', namespace: n }, data: { 'app.conf': 'mode=test\n' } });
    const uids = [(await bed.dst.get(Res.secret, n, 'vm-cloudinit')).metadata?.uid, (await bed.dst.get(Res.configMap, n, 'vm-config')).metadata?.uid];
    await bed.src.create(Res.wanMigration, wanMigration(n, 'mig', { vmName: 'vm', cutover: { mode: 'Manual' } }));
    await waitForPhase(bed.src, n, 'mig', 'AwaitingCutover');
    await bed.src.patchMerge(Res.wanMigration, n, 'mig', { spec: { abort: true } });
    await waitForPhase(bed.src, n, 'mig', 'Aborted');
    assert.equal(await bed.dst.tryGet(Res.vm, n, 'vm'), undefined, 'our receiver VM was removed');
    assert.deepEqual([(await bed.dst.get(Res.secret, n, 'vm-cloudinit')).metadata?.uid, (await bed.dst.get(Res.configMap, n, 'vm-config')).metadata?.uid], uids, 'theirs were not');
  });

  test('two WanMigrations for one VM → the second gets Conflict until the first ends', async () => {
    const n = await ns('bi-conflict');
    await createVM(bed.src, n, 'vm');
    await bed.src.create(Res.wanMigration, wanMigration(n, 'first', { vmName: 'vm', cutover: { mode: 'Manual' } }));
    await waitForPhase(bed.src, n, 'first', 'AwaitingCutover');
    await expectBlocked(n, 'second', 'Conflict', { vmName: 'vm' });
    assert.match(findCondition((await getWM(bed.src, n, 'second'))?.status?.conditions, 'Stalled')?.message ?? '', /first/);
    await bed.src.patchMerge(Res.wanMigration, n, 'first', { spec: { abort: true } });
    await waitForPhase(bed.src, n, 'first', 'Aborted');
    await waitForPhase(bed.src, n, 'second', 'Succeeded', 30_000);
  });

  test('a kubevirt-ca that is not a PEM certificate → Stalled CABundleInvalid in PreparingTarget; nothing copied; fixing it lets the migration finish', async () => {
    const n = await ns('bi-ca');
    await createVM(bed.src, n, 'vm');
    type CM = KubeObject & { data: Record<string, string> };
    const good = (await bed.src.get<CM>(Res.configMap, 'kubevirt', 'kubevirt-ca')).data['ca-bundle'];
    const garbage = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';
    await bed.src.patchMerge(Res.configMap, 'kubevirt', 'kubevirt-ca', { data: { 'ca-bundle': garbage } });
    try {
      await bed.src.create(Res.wanMigration, wanMigration(n, 'mig', { vmName: 'vm' }));
      const wm = await waitForCondition(bed.src, n, 'mig', 'Stalled', 'True', 'CABundleInvalid');
      assert.equal(wm.status?.phase, 'PreparingTarget');
      assert.match(findCondition(wm.status?.conditions, 'Stalled')?.message ?? '', /kubevirt-ca on the source cluster is not a PEM certificate bundle: certificate 1 does not parse/);
      await waitForEvent(bed.src, n, 'mig', 'CABundleInvalid');
      const targetCA = await bed.dst.get<CM>(Res.configMap, 'kubevirt', 'kubevirt-ca');
      assert.ok(!targetCA.data['ca-bundle'].includes('bm90IGEgY2VydGlmaWNhdGU='), 'garbage never reaches the target trust store');
      assert.equal((await bed.dst.get<CM>(Res.configMap, 'kubevirt', 'kubevirt-external-ca')).data['ca-bundle'], '');
    } finally {
      await bed.src.patchMerge(Res.configMap, 'kubevirt', 'kubevirt-ca', { data: { 'ca-bundle': good } });
    }
    await waitForPhase(bed.src, n, 'mig', 'Succeeded', 30_000);
  });

  test('source VMs were never touched by blocked migrations, and no reconcile errored', async () => {
    for (const n of ['bi-stopped', 'bi-nolm', 'bi-nosite', 'bi-nosecret', 'bi-badkc', 'bi-unreach', 'bi-nons', 'bi-collide', 'bi-disk', 'bi-secret']) {
      assert.ok(await bed.src.tryGet(Res.vm, n, 'vm'), `${n}/vm still exists`);
      assert.equal((await bed.src.list(Res.vmim, n)).items.length, 0, `${n}: no VMIM`);
    }
    assert.equal(await reconcileErrors(op) - errorsBefore, 0);
  });
});
