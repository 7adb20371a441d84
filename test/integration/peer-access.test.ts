// The chart's RBAC is enough on both sides. In the source cluster the operator runs as the chart's
// ServiceAccount with the chart's ClusterRole and Roles (rbac.vmDataNamespaces listing the source
// namespaces). In the target cluster the chart's peer identity (rbac.peer:
// charts/cloudnet/templates/peer-rbac.yaml, plus the VM-data
// Roles of rbac.vmDataNamespaces and the KubeVirt CA Role, which bind it too) is enough, and only
// as much as needed: the target cluster gets exactly the rendered ServiceAccount, ClusterRole,
// Roles and bindings, the Site's kubeconfig authenticates as that ServiceAccount (not an admin, not
// system:masters), the Site (allowedNamespaces = the chart's vmDataNamespaces) is Ready with exactly
// those rights, and a WanMigration into a listed namespace goes all the way to Succeeded, CA
// exchange and cleanup of what it created included. A namespace that is not listed is refused, by
// the Site and by RBAC: the peer may read, create or delete VMs, VMIMs and DataVolumes only in the
// listed namespaces (the operator's informers of the target watch only those). Without
// allowedNamespaces, a migration asks for the rights in its own namespace before it starts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeClient } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import { helmTemplate, splitRendered } from '../../hack/packaging.ts';
import { applyManifests, useClusters, userKubeconfig } from '../env/index.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Site } from '../../src/api/site.ts';
import { waitFor } from '../helpers/poll.ts';
import {
  createVM, ensure, OPERATOR_NS, operatorConfig, operatorFactories, reconcileErrors, setupBed, vmObject, waitForCondition, waitForEvent, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';

const NS = 'peer-vms';

let bed: Bed | undefined;
let op: RunningOperator | undefined;
let peerClient: KubeClient | undefined;

describe('a migration with only the chart\'s rights: rbac.peer in the target cluster, the operator\'s own RBAC in the source cluster', { timeout: 240_000 }, () => {
  after(async () => {
    await op?.stop();
    await bed?.stop();
    await peerClient?.rest.close();
  });
  useClusters(2, {
    setup: async (clusters) => {
      bed = await setupBed(clusters);
      const [, b] = clusters;
      // What an admin of the target cluster grants the peer: the chart's rbac.peer objects, nothing else.
      for (const ns of [OPERATOR_NS, NS, 'not-listed']) await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
      const peerTemplates = ['templates/peer-rbac.yaml', 'templates/vmdata-roles.yaml', 'templates/kubevirt-role.yaml'];
      const rendered = splitRendered(helmTemplate('t', OPERATOR_NS, ['gateway.enabled=false', 'rbac.peer.enabled=true', `rbac.vmDataNamespaces={${NS}}`]))
        .filter((d) => peerTemplates.includes(d.source)).map((d) => d.text).join('---\n');
      const applied = await applyManifests(b, rendered);
      assert.deepEqual(applied.map((m) => `${m.kind}/${m.metadata.name}`).sort(), [
        'ClusterRole/t-cloudnet-peer', 'ClusterRoleBinding/t-cloudnet-peer', 'Role/t-cloudnet-kubevirt-ca', 'Role/t-cloudnet-vmdata',
        'Role/t-cloudnet-vmdata-source', 'RoleBinding/t-cloudnet-kubevirt-ca', 'RoleBinding/t-cloudnet-vmdata', 'RoleBinding/t-cloudnet-vmdata-source',
        'ServiceAccount/t-cloudnet-peer',
      ]);
      // The Site's kubeconfig authenticates as that ServiceAccount (its groups, not system:masters).
      const peer = await userKubeconfig(b, { user: `system:serviceaccount:${OPERATOR_NS}:t-cloudnet-peer`, groups: ['system:serviceaccounts', `system:serviceaccounts:${OPERATOR_NS}`, 'system:authenticated'] });
      peerClient = new KubeClient(peer.kubeConfig, 'site-b-as-peer');
      await bed.src.patchMerge(Res.secret, OPERATOR_NS, 'site-b-kubeconfig', { stringData: { kubeconfig: peer.kubeconfigYaml } });
      // The Site accepts the namespaces the peer's rights cover, so its permission check asks for those.
      await bed.src.patchMerge(Res.site, undefined, 'site-b', { spec: { allowedNamespaces: [NS] } });
      // The source side too: the operator runs as the chart's own ServiceAccount with the chart's
      // RBAC in its cluster (source VMs in NS and not-listed), not as an admin.
      const [a] = clusters;
      for (const ns of [NS, 'not-listed', 'kubevirt']) await ensure(bed.src, Res.namespace, { metadata: { name: ns } });
      const operatorTemplates = ['templates/serviceaccount.yaml', 'templates/clusterrole.yaml', 'templates/role.yaml', 'templates/kubevirt-role.yaml', 'templates/vmdata-roles.yaml'];
      const own = splitRendered(helmTemplate('t', OPERATOR_NS, ['gateway.enabled=false', `rbac.vmDataNamespaces={${NS},not-listed}`]))
        .filter((d) => operatorTemplates.includes(d.source)).map((d) => d.text).join('---\n');
      await applyManifests(a, own);
      const self = await userKubeconfig(a, { user: `system:serviceaccount:${OPERATOR_NS}:t-cloudnet`, groups: ['system:serviceaccounts', `system:serviceaccounts:${OPERATOR_NS}`, 'system:authenticated'] });
      op = await startOperator(operatorConfig(self.kubeConfig), operatorFactories());
    },
  });

  test('the identity is not an admin', async () => {
    // rbac.peer grants reading and writing the KubeVirt objects, and Secrets and ConfigMaps at
    // all, only where listed (the Site's allowedNamespaces says the same).
    const forbidden = (e: unknown) => e instanceof KubeApiError && e.code === 403;
    for (const [ref, ns] of [[Res.secret, 'kube-system'], [Res.secret, 'not-listed'], [Res.configMap, 'not-listed'], [Res.configMap, OPERATOR_NS], [Res.secret, 'kubevirt']] as const) {
      await assert.rejects(peerClient!.list(ref, ns), forbidden, `list ${ref.kind} in ${ns}`);
    }
    for (const ns of ['not-listed', 'kube-system']) {
      await assert.rejects(peerClient!.create(Res.vm, vmObject(ns, 'intruder', { memory: '64Mi', disks: [] })), forbidden, `create a VM in ${ns}`);
      await assert.rejects(peerClient!.create(Res.dataVolume, { metadata: { name: 'intruder', namespace: ns }, spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } } }),
        forbidden, `create a DataVolume in ${ns}`);
      await assert.rejects(peerClient!.create(Res.vmim, { metadata: { name: 'intruder', namespace: ns }, spec: { vmiName: 'x' } }), forbidden, `create a VMIM in ${ns}`);
    }
    // A VM the target cluster runs in a namespace that is not listed: not readable (VM specs carry
    // inline cloud-init data), not removable, and nothing is listed across all namespaces.
    await bed!.dst.create(Res.vm, vmObject('not-listed', 'resident', { memory: '64Mi', disks: [], runStrategy: 'Halted' }));
    await assert.rejects(peerClient!.get(Res.vm, 'not-listed', 'resident'), forbidden, 'get a VM in a namespace that is not listed');
    for (const ref of [Res.vm, Res.vmi, Res.vmim, Res.dataVolume]) {
      await assert.rejects(peerClient!.list(ref), forbidden, `list ${ref.kind} in all namespaces`);
      await assert.rejects(peerClient!.list(ref, 'not-listed'), forbidden, `list ${ref.kind} in not-listed`);
      await peerClient!.list(ref, NS);
    }
    await assert.rejects(peerClient!.delete(Res.vm, 'not-listed', 'resident'), forbidden, 'delete a VM in a namespace that is not listed');
    await bed!.dst.delete(Res.vm, 'not-listed', 'resident');
  });

  test('a migration into a listed namespace succeeds', async () => {
    const { src } = bed!;
    // The Site's permission check passes with exactly the chart's rights (the CA bundles by name included).
    await waitFor(async () => findCondition(((await src.get(Res.site, undefined, 'site-b')) as unknown as Site).status?.conditions, 'Ready')?.status === 'True',
      { what: 'site-b Ready with the chart\'s peer rights', timeoutMs: 30_000 });
    await createVM(src, NS, 'vm');
    await src.create(Res.wanMigration, wanMigration(NS, 'mig', { vmName: 'vm' }));
    const wm = await waitForPhase(src, NS, 'mig', 'Succeeded', 120_000);
    assert.equal(wm.status?.phase, 'Succeeded');
    // The receiver VM runs on the target; the source is halted.
    const target = await bed!.dst.get<{ spec: { runStrategy?: string } } & import('../../src/kube/rest.ts').KubeObject>(Res.vm, NS, 'vm');
    assert.equal(target.spec.runStrategy, 'Always');
  });

  test('a namespace that is not listed is refused with a reason and an Event, not a crash loop', async () => {
    const { src } = bed!;
    await createVM(src, 'not-listed', 'vm');
    await src.create(Res.wanMigration, wanMigration('not-listed', 'mig', { vmName: 'vm' }));
    const wm = await waitForCondition(src, 'not-listed', 'mig', 'Stalled', 'True', 'TargetNamespaceNotAllowed', 30_000);
    assert.equal(wm.status?.phase, 'Pending', 'nothing was started');
    assert.match(findCondition(wm.status?.conditions, 'Stalled')!.message, /spec\.allowedNamespaces/);
    await waitForEvent(src, 'not-listed', 'mig', 'TargetNamespaceNotAllowed');
    assert.equal(await reconcileErrors(op!), 0, 'reported as a condition, not as failing reconciles');
  });

  test('a listed namespace the peer\'s chart does not cover: the migration stalls with TargetPermissionsMissing before anything is created', async () => {
    const { src } = bed!;
    await ensure(bed!.dst, Res.namespace, { metadata: { name: 'uncovered' } });
    await src.patchMerge(Res.site, undefined, 'site-b', { spec: { allowedNamespaces: [NS, 'uncovered'] } });
    await createVM(src, NS, 'vm3');
    await src.create(Res.wanMigration, wanMigration(NS, 'to-uncovered', { vmName: 'vm3', targetNamespace: 'uncovered' }));
    const wm = await waitForCondition(src, NS, 'to-uncovered', 'Stalled', 'True', 'TargetPermissionsMissing', 30_000);
    assert.equal(wm.status?.phase, 'Pending');
    assert.match(findCondition(wm.status?.conditions, 'Stalled')!.message, /may not .*create virtualmachines\.kubevirt\.io.* in namespace uncovered/);
    assert.equal((await bed!.dst.list(Res.vm, 'uncovered')).items.length, 0, 'nothing created there');
    await src.delete(Res.wanMigration, NS, 'to-uncovered');
    await src.patchMerge(Res.site, undefined, 'site-b', { spec: { allowedNamespaces: [NS] } });
  });

  test('a Site that lists no namespaces: its migrations read only their own namespace there, and one the peer\'s chart does not cover stalls with TargetPermissionsMissing', async () => {
    const { src } = bed!;
    await src.patchMerge(Res.site, undefined, 'site-b', { spec: { allowedNamespaces: null } });
    // The Site asks nothing across all namespaces any more, so the chart's rights still make it Ready.
    await waitFor(async () => {
      const site = (await src.get(Res.site, undefined, 'site-b')) as unknown as Site;
      return !site.spec.allowedNamespaces && findCondition(site.status?.conditions, 'Ready')?.status === 'True';
    }, { what: 'site-b Ready without allowedNamespaces', timeoutMs: 30_000 });
    // The earlier migration in not-listed now passes the tenancy rule (its own namespace) and meets
    // the peer's missing rights there, before anything is created.
    const wm = await waitForCondition(src, 'not-listed', 'mig', 'Stalled', 'True', 'TargetPermissionsMissing', 30_000);
    assert.equal(wm.status?.phase, 'Pending');
    assert.match(findCondition(wm.status?.conditions, 'Stalled')!.message, /may not .*create virtualmachines\.kubevirt\.io.* in namespace not-listed/);
    await waitForEvent(src, 'not-listed', 'mig', 'TargetPermissionsMissing');
    assert.equal((await bed!.dst.list(Res.vm, 'not-listed')).items.length, 0, 'nothing created there');
    // Its own namespace, which the chart covers, migrates with namespaced caches.
    await createVM(src, NS, 'vm2');
    await src.create(Res.wanMigration, wanMigration(NS, 'mig2', { vmName: 'vm2' }));
    assert.equal((await waitForPhase(src, NS, 'mig2', 'Succeeded', 120_000)).status?.phase, 'Succeeded');
    assert.equal(await reconcileErrors(op!), 0, 'no reconcile failed on a refused read');
  });
});
