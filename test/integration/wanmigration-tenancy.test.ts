// Tenancy on real API servers (issue 14): a WanMigration may only migrate into the namespaces its
// target Site accepts (by default its own; optionally narrowed per source namespace), labels and annotations reach the target filtered by the
// documented rule, a Site whose kubeconfig Secret is outside the operator's namespace stalls only
// its own migrations, and a Site in use is not deleted until its migrations are done.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Site } from '../../src/api/site.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { RunningOperator } from '../../src/operator/main.ts';
import {
  createVM, ensure, eventsFor, getWM, OPERATOR_NS, reconcileErrors, useOperatorBed, waitForCondition, waitForEvent, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
let op: RunningOperator;
// Unused peer namespace caches are released at every look (default: once a minute).
useOperatorBed((b, o) => { bed = b; op = o; }, { sweepIntervalMs: 0 });

/** Informers (watches) the operator holds on the cluster of Site `site`. */
async function informersOn(site: string): Promise<number> {
  const m = op.manager.metrics.registry.getSingleMetric('cloudnet_informers');
  return (await m?.get())?.values.find((v) => v.labels.cluster === site)?.value ?? 0;
}

type Labelled = KubeObject & { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } };

async function namespaces(src: string[], dst: string[]): Promise<void> {
  for (const n of src) await ensure(bed.src, Res.namespace, { metadata: { name: n } });
  for (const n of dst) await ensure(bed.dst, Res.namespace, { metadata: { name: n } });
}

/** Another Site for cluster b, with its kubeconfig Secret in `secretNs` (the operator's by default). */
async function siteForB(name: string, spec: Partial<Site['spec']> = {}, secretNs = OPERATOR_NS): Promise<void> {
  await ensure(bed.src, Res.namespace, { metadata: { name: secretNs } });
  await ensure(bed.src, Res.secret, { metadata: { name: `${name}-kubeconfig`, namespace: secretNs }, stringData: { kubeconfig: bed.b.kubeconfigYaml } });
  await ensure(bed.src, Res.site, { metadata: { name }, spec: { kubeconfigSecretRef: { namespace: secretNs, name: `${name}-kubeconfig` }, ...spec } });
}

/** Everything in `ns` on the target: VMs, DataVolumes, Secrets, ConfigMaps, VMIMs. */
async function targetContents(ns: string): Promise<string[]> {
  const out: string[] = [];
  for (const ref of [Res.vm, Res.dataVolume, Res.secret, Res.configMap, Res.vmim]) {
    for (const o of (await bed.dst.list(ref, ns)).items) out.push(`${ref.kind} ${o.metadata?.name}`);
  }
  return out;
}

async function expectStalled(ns: string, name: string, reason: string): Promise<string> {
  const wm = await waitForCondition(bed.src, ns, name, 'Stalled', 'True', reason, 30_000);
  assert.equal(wm.status?.phase, 'Pending');
  assert.equal(wm.status?.migrationID, undefined, 'not started');
  assert.equal(findCondition(wm.status?.conditions, 'Ready')?.reason, reason);
  const ev = await waitForEvent(bed.src, ns, name, reason);
  assert.equal(ev.type, 'Warning');
  return findCondition(wm.status?.conditions, 'Stalled')?.message ?? '';
}

describe('target namespaces', () => {
  test('another tenant\'s namespace (or kube-system) is refused by default: Stalled TargetNamespaceNotAllowed, Event, nothing created there', async () => {
    await namespaces(['tn-a'], ['tn-a', 'tn-victim']);
    await createVM(bed.src, 'tn-a', 'vm');
    await createVM(bed.src, 'tn-a', 'vm2'); // one VM per migration: two for one VM would be a Conflict
    const before = { victim: await targetContents('tn-victim'), system: await targetContents('kube-system') };
    await bed.src.create(Res.wanMigration, wanMigration('tn-a', 'to-victim', { vmName: 'vm', targetNamespace: 'tn-victim' }));
    await bed.src.create(Res.wanMigration, wanMigration('tn-a', 'to-system', { vmName: 'vm2', targetNamespace: 'kube-system' }));
    const msg = await expectStalled('tn-a', 'to-victim', 'TargetNamespaceNotAllowed');
    assert.match(msg, /Site site-b does not accept target namespace tn-victim for WanMigrations in namespace tn-a/);
    assert.match(msg, /spec\.allowedNamespaces/);
    await expectStalled('tn-a', 'to-system', 'TargetNamespaceNotAllowed');
    // Several more reconciles (blockedRetryMs is 400 ms here), then: still nothing there.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await targetContents('tn-victim'), before.victim);
    assert.deepEqual(await targetContents('kube-system'), before.system);
    assert.equal((await bed.src.list(Res.vmim, 'tn-a')).items.length, 0);
    // The one allowed by default, its own namespace, works (and takes the VM).
    await bed.src.delete(Res.wanMigration, 'tn-a', 'to-victim');
    await bed.src.delete(Res.wanMigration, 'tn-a', 'to-system');
    await bed.src.create(Res.wanMigration, wanMigration('tn-a', 'own', { vmName: 'vm' }));
    await waitForPhase(bed.src, 'tn-a', 'own', 'Succeeded', 30_000);
  });

  test('a Site\'s allowedNamespaces accepts the listed namespace, and only the listed ones; copies carry filtered metadata', async () => {
    await siteForB('site-shared', { allowedNamespaces: ['tn-shared'] });
    await namespaces(['tn-c', 'tn-d'], ['tn-shared', 'tn-d']);
    await createVM(bed.src, 'tn-c', 'vm');
    await createVM(bed.src, 'tn-d', 'vm');
    const labels = { team: 'c', 'app.kubernetes.io/name': 'db', 'kubevirt.io/domain': 'x', 'argocd.argoproj.io/instance': 'prod', 'cloudnet.io/migration-uid': 'forged' };
    const annotations = { owner: 'team-c', 'kubectl.kubernetes.io/last-applied-configuration': '{"secret":"do not copy"}', 'kubevirt.io/latest-observed-api-version': 'v1' };
    await bed.src.patchMerge(Res.vm, 'tn-c', 'vm', { metadata: { labels, annotations } });
    await bed.src.patchMerge(Res.secret, 'tn-c', 'vm-cloudinit', { metadata: { labels: { team: 'c', 'k8s.io/owner': 'x' } } });
    // The list is authoritative: tn-d is not on it, even as the WanMigration's own namespace.
    await bed.src.create(Res.wanMigration, wanMigration('tn-d', 'mig', { vmName: 'vm', targetSite: 'site-shared', targetNamespace: 'tn-d' }));
    assert.match(await expectStalled('tn-d', 'mig', 'TargetNamespaceNotAllowed'), /lists only tn-shared/);
    await bed.src.create(Res.wanMigration, wanMigration('tn-c', 'mig', { vmName: 'vm', targetSite: 'site-shared', targetNamespace: 'tn-shared' }));
    const wm = await waitForPhase(bed.src, 'tn-c', 'mig', 'Succeeded', 30_000);
    const vm = await bed.dst.get<Labelled>(Res.vm, 'tn-shared', 'vm');
    const l = vm.metadata.labels ?? {};
    assert.equal(l.team, 'c');
    assert.equal(l['app.kubernetes.io/name'], 'db');
    for (const k of ['kubevirt.io/domain', 'argocd.argoproj.io/instance']) assert.equal(l[k], undefined, k);
    assert.equal(l['cloudnet.io/migration-uid'], wm.metadata.uid, 'our own label, never the copied one');
    const a = vm.metadata.annotations ?? {};
    assert.equal(a.owner, 'team-c');
    assert.equal(a['kubectl.kubernetes.io/last-applied-configuration'], undefined);
    assert.equal(a['kubevirt.io/latest-observed-api-version'], undefined);
    assert.equal(a['kubevirt.io/restore-run-strategy'], 'Always', 'ours');
    const secret = await bed.dst.get<Labelled>(Res.secret, 'tn-shared', 'vm-cloudinit');
    assert.equal(secret.metadata.labels?.team, 'c');
    assert.equal(secret.metadata.labels?.['k8s.io/owner'], undefined);
    assert.deepEqual(await targetContents('tn-d'), [], 'nothing in the refused namespace');
  });

  test('allowedNamespacesBySource: on a Site shared by two tenants, each lands only in its own target namespaces', async () => {
    await siteForB('site-tenants', {
      allowedNamespaces: ['tn-h', 'tn-i'],
      allowedNamespacesBySource: [{ sourceNamespace: 'tn-h', targetNamespaces: ['tn-h'] }, { sourceNamespace: 'tn-i', targetNamespaces: ['tn-i'] }],
    });
    await namespaces(['tn-h', 'tn-i', 'tn-j'], ['tn-h', 'tn-i']);
    await createVM(bed.src, 'tn-h', 'vm');
    await createVM(bed.src, 'tn-h', 'vm2');
    await createVM(bed.src, 'tn-j', 'vm');
    const before = await targetContents('tn-i');
    // tn-i is on the flat list, but not tn-h's: refused before anything is created there.
    await bed.src.create(Res.wanMigration, wanMigration('tn-h', 'to-f', { vmName: 'vm2', targetSite: 'site-tenants', targetNamespace: 'tn-i' }));
    assert.match(await expectStalled('tn-h', 'to-f', 'TargetNamespaceNotAllowed'), /allowedNamespacesBySource lets namespace tn-h use only tn-h/);
    // A source namespace without an entry may not use the Site at all.
    await bed.src.create(Res.wanMigration, wanMigration('tn-j', 'to-f', { vmName: 'vm', targetSite: 'site-tenants', targetNamespace: 'tn-i' }));
    assert.match(await expectStalled('tn-j', 'to-f', 'TargetNamespaceNotAllowed'), /has no entry for namespace tn-j/);
    assert.deepEqual(await targetContents('tn-i'), before, 'nothing in tn-i');
    // Its own target namespace works.
    await bed.src.create(Res.wanMigration, wanMigration('tn-h', 'own', { vmName: 'vm', targetSite: 'site-tenants', targetNamespace: 'tn-h' }));
    await waitForPhase(bed.src, 'tn-h', 'own', 'Succeeded', 30_000);
    // The API server refuses a malformed entry (no target namespaces).
    await assert.rejects(bed.src.patchMerge(Res.site, undefined, 'site-tenants', { spec: { allowedNamespacesBySource: [{ sourceNamespace: 'tn-h', targetNamespaces: [] }] } }), /targetNamespaces/);
    assert.equal(await reconcileErrors(op), 0);
  });
});

describe('peer caches of a Site without allowedNamespaces', () => {
  test('watch only the target namespaces of unfinished migrations: never all namespaces, and a finished one\'s are released', async () => {
    await siteForB('site-sweep');
    await namespaces(['sw-1', 'sw-2'], ['sw-1', 'sw-2']);
    await createVM(bed.src, 'sw-1', 'vm');
    await createVM(bed.src, 'sw-2', 'vm');
    await bed.src.create(Res.wanMigration, wanMigration('sw-1', 'mig', { vmName: 'vm', targetSite: 'site-sweep' }));
    await waitForPhase(bed.src, 'sw-1', 'mig', 'Succeeded', 30_000);
    // VMs, VMIs, VMIMs and DataVolumes in sw-1, plus the KubeVirt CR and the two CA bundles.
    const perNamespace = 4;
    const base = 3;
    assert.equal(await informersOn('site-sweep'), base + perNamespace);
    await bed.src.create(Res.wanMigration, wanMigration('sw-2', 'mig', { vmName: 'vm', targetSite: 'site-sweep' }));
    await waitForPhase(bed.src, 'sw-2', 'mig', 'Succeeded', 30_000);
    assert.equal(await informersOn('site-sweep'), base + perNamespace, 'sw-1\'s caches were released when sw-2\'s started');
    assert.equal(await reconcileErrors(op), 0);
  });
});

describe('Site isolation', () => {
  test('a Site whose kubeconfig Secret is not in the operator\'s namespace stalls only its migrations, with the reason; others succeed', async () => {
    await siteForB('site-foreign', {}, 'tenant-secrets');
    await namespaces(['tn-e', 'tn-f'], ['tn-e', 'tn-f']);
    await createVM(bed.src, 'tn-e', 'vm');
    await createVM(bed.src, 'tn-f', 'vm');
    await bed.src.create(Res.wanMigration, wanMigration('tn-e', 'mig', { vmName: 'vm', targetSite: 'site-foreign' }));
    await bed.src.create(Res.wanMigration, wanMigration('tn-f', 'mig', { vmName: 'vm' }));
    const msg = await expectStalled('tn-e', 'mig', 'KubeconfigSecretNamespaceNotAllowed');
    assert.match(msg, new RegExp(`must be in the operator's namespace ${OPERATOR_NS}`));
    await waitForPhase(bed.src, 'tn-f', 'mig', 'Succeeded', 30_000);
    const site = await waitFor(async () => {
      const s = (await bed.src.tryGet(Res.site, undefined, 'site-foreign')) as unknown as Site | undefined;
      return findCondition(s?.status?.conditions, 'Ready')?.status === 'False' ? s : undefined;
    }, { what: 'Site site-foreign Ready=False' });
    assert.equal(findCondition(site.status?.conditions, 'Ready')?.reason, 'KubeconfigSecretNamespaceNotAllowed');
    await waitForEvent(bed.src, 'default', 'site-foreign', 'KubeconfigSecretNamespaceNotAllowed');
    assert.deepEqual(await targetContents('tn-e'), [], 'nothing reached the target through that Site');
  });
});

describe('Site deletion', () => {
  test('a Site in use: its deletion waits (DeletionDeferred + Event), no new migration starts on it, and it goes once the migration is done', async () => {
    await siteForB('site-del');
    await namespaces(['tn-del', 'tn-del2'], ['tn-del', 'tn-del2']);
    await createVM(bed.src, 'tn-del', 'vm');
    await createVM(bed.src, 'tn-del2', 'vm');
    await waitFor(async () => ((await bed.src.tryGet(Res.site, undefined, 'site-del'))?.metadata?.finalizers ?? []).includes('cloudnet.io/site-in-use'), { what: 'Site site-del has its finalizer' });
    await bed.src.create(Res.wanMigration, wanMigration('tn-del', 'mig', { vmName: 'vm', targetSite: 'site-del', cutover: { mode: 'Manual' } }));
    await waitForPhase(bed.src, 'tn-del', 'mig', 'AwaitingCutover');
    await bed.src.delete(Res.site, undefined, 'site-del');
    const site = await waitFor(async () => {
      const s = (await bed.src.tryGet(Res.site, undefined, 'site-del')) as unknown as Site | undefined;
      return findCondition(s?.status?.conditions, 'Ready')?.reason === 'DeletionDeferred' ? s : undefined;
    }, { what: 'Site site-del DeletionDeferred' });
    assert.ok(site.metadata.deletionTimestamp);
    assert.match(findCondition(site.status?.conditions, 'Ready')?.message ?? '', /tn-del\/mig/);
    assert.equal((await waitForEvent(bed.src, 'default', 'site-del', 'DeletionDeferred')).type, 'Warning');
    await bed.src.create(Res.wanMigration, wanMigration('tn-del2', 'mig', { vmName: 'vm', targetSite: 'site-del' }));
    await expectStalled('tn-del2', 'mig', 'SiteDeleting');
    // The running migration is not disturbed, and may still finish through the Site.
    await bed.src.patchMerge(Res.wanMigration, 'tn-del', 'mig', { spec: { cutover: { approved: true } } });
    await waitForPhase(bed.src, 'tn-del', 'mig', 'Succeeded', 30_000);
    await waitFor(async () => !(await bed.src.tryGet(Res.site, undefined, 'site-del')), { what: 'Site site-del deleted', timeoutMs: 20_000 });
    assert.equal((await getWM(bed.src, 'tn-del2', 'mig'))?.status?.migrationID, undefined, 'the blocked one never started');
    assert.ok((await eventsFor(bed.src, 'tn-del', 'mig')).some((e) => e.reason === 'Succeeded'));
  });
});

describe('no crash loop', () => {
  test('none of the refusals above made a reconcile fail', async () => {
    // Errors would mean no status and a backoff loop instead of a condition.
    const errs = await reconcileErrors(op);
    assert.equal(errs, 0, `${errs} reconcile errors`);
  });
});
