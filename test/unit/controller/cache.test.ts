// The WanMigration caches' pure parts: what each shape keeps (everything observe.ts reads, and
// nothing big), the memo and single-flight helpers, and the cache-backed reader's choice between
// cache and API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { caConfigMapShape, kubevirtShape, vmiShape, vmimShape, vmShape } from '../../../src/controller/cache/shapes.ts';
import { SingleFlight, TtlMemo } from '../../../src/controller/cache/memo.ts';
import { foldPassThroughEvents } from '../../../src/controller/phases/fold-events.ts';
import { volumeRefs } from '../../../src/controller/target-objects.ts';
import { CachedReader, matchesLabels, parseLabelSelector } from '../../../src/kube/cached-reader.ts';
import { Informer } from '../../../src/kube/informer.ts';
import type { KubeClient } from '../../../src/kube/client.ts';
import type { KubeObject } from '../../../src/kube/rest.ts';
import { Res } from '../../../src/api/resources.ts';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';

const bigMeta = {
  name: 'vm', namespace: 'ns', uid: 'u1', resourceVersion: '7', generation: 2,
  labels: { app: 'x', 'cloudnet.io/migration-uid': 'm1', 'app.kubernetes.io/managed-by': 'cloudnet' },
  annotations: { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(5000), 'kubevirt.io/latest-observed-api-version': 'v1' },
  managedFields: [{ manager: 'kubectl', fieldsV1: { big: 'x'.repeat(5000) } }],
};

test('the VM shape keeps run strategy, volume names and our labels, and drops the rest', () => {
  const vm = {
    metadata: bigMeta,
    spec: {
      runStrategy: 'Always',
      dataVolumeTemplates: [{ metadata: { name: 'vm-root' }, spec: { storage: { resources: { requests: { storage: '1Gi' } } } } }],
      template: { metadata: { labels: { app: 'x' } }, spec: {
        domain: { devices: { disks: [{ name: 'root' }] }, memory: { guest: '512Mi' } },
        volumes: [
          { name: 'root', dataVolume: { name: 'vm-root' } },
          { name: 'pvc', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'ci', cloudInitNoCloud: { userData: '#cloud-config\n' + 'x'.repeat(5000), secretRef: { name: 'vm-cloudinit' } } },
          { name: 'cm', configMap: { name: 'vm-config' } },
          { name: 's', secret: { secretName: 'creds' } },
        ],
      } },
    },
    status: { printableStatus: 'Running', conditions: [{ type: 'Ready', status: 'True' }], volumeSnapshotStatuses: [{}] },
  } as KubeObject;
  const s = vmShape(vm);
  assert.deepEqual(s.metadata, { name: 'vm', namespace: 'ns', uid: 'u1', resourceVersion: '7', generation: 2, labels: { 'cloudnet.io/migration-uid': 'm1', 'app.kubernetes.io/managed-by': 'cloudnet' } });
  assert.deepEqual(s.status, { printableStatus: 'Running' });
  assert.deepEqual(volumeRefs(s as unknown as V1VirtualMachine), volumeRefs(vm as unknown as V1VirtualMachine), 'volume references survive');
  assert.equal((s.spec as { runStrategy: string }).runStrategy, 'Always');
  assert.ok(JSON.stringify(s).length < 700, `small: ${JSON.stringify(s).length} B`);
});

test('the VMI, VMIM, KubeVirt and CA shapes keep what observe reads', () => {
  const vmi = vmiShape({ metadata: bigMeta, spec: { domain: {} }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }, { type: 'LiveMigratable', status: 'False', reason: 'R', message: 'M' }], interfaces: [{}] } });
  assert.deepEqual(vmi.status, { phase: 'Running', conditions: [{ type: 'LiveMigratable', status: 'False', reason: 'R', message: 'M' }] });
  // The receiver's migration proxy stays: the relay registration reads it (observe.ts migrationEndpoint).
  const receiver = vmiShape({ metadata: bigMeta, status: { phase: 'Scheduled', migrationState: {
    targetNodeAddress: '10.0.0.2', targetDirectMigrationNodePorts: { 40001: 49152, 40002: 49153 }, migrationUid: 'm1', sourceNode: 'n', startTimestamp: 't',
  } } });
  assert.deepEqual((receiver.status as { migrationState?: unknown }).migrationState, { targetNodeAddress: '10.0.0.2', targetDirectMigrationNodePorts: { 40001: 49152, 40002: 49153 }, migrationUid: 'm1' });
  const vmim = vmimShape({ metadata: { ...bigMeta, deletionTimestamp: new Date('2026-01-01T00:00:00Z') }, spec: { vmiName: 'vm', sendTo: { connectURL: 'x', migrationID: 'm' } }, status: {
    phase: 'Failed', synchronizationAddresses: ['1.2.3.4:9185'], phaseTransitionTimestamps: [{}, {}],
    conditions: [{ type: 'decentralizedMigrationBlocked', status: 'True', message: 'no' }, { type: 'Other', status: 'True' }],
    migrationState: { failureReason: 'boom', sourceNode: 'n' },
  } });
  assert.deepEqual(vmim.metadata?.deletionTimestamp, new Date('2026-01-01T00:00:00Z'));
  assert.deepEqual(vmim.status, { phase: 'Failed', synchronizationAddresses: ['1.2.3.4:9185'], conditions: [{ type: 'decentralizedMigrationBlocked', status: 'True', message: 'no' }], migrationState: { failureReason: 'boom' } });
  const kv = kubevirtShape({ metadata: bigMeta, spec: { configuration: { developerConfiguration: { featureGates: ['A'], disabledFeatureGates: ['B'], logVerbosity: {} }, network: {} } }, status: { observedKubeVirtVersion: 'v1.7.0', synchronizationAddresses: ['a'], conditions: [{}] } });
  assert.deepEqual(kv.spec, { configuration: { developerConfiguration: { featureGates: ['A'], disabledFeatureGates: ['B'] } } });
  assert.deepEqual(kv.status, { observedKubeVirtVersion: 'v1.7.0', synchronizationAddresses: ['a'] });
  // Migration TLS decides RelayOptimizing (MigrationTLSEnabled).
  const kvTls = kubevirtShape({ metadata: bigMeta, spec: { configuration: { migrations: { disableTLS: true, bandwidthPerMigration: '1Gi' } } } });
  assert.deepEqual(kvTls.spec, { configuration: { developerConfiguration: {}, migrations: { disableTLS: true } } });
  assert.deepEqual(caConfigMapShape({ metadata: { name: 'kubevirt-ca', resourceVersion: '3' }, data: { 'ca-bundle': 'PEM', other: 'x' } }), { metadata: { name: 'kubevirt-ca', resourceVersion: '3' }, data: { 'ca-bundle': 'PEM' } });
  assert.deepEqual(caConfigMapShape({ metadata: { name: 'unrelated', resourceVersion: '4' }, data: { big: 'x' } }), { metadata: { name: 'unrelated', resourceVersion: '4' } });
});

test('TtlMemo reuses good answers for the TTL only; SingleFlight runs once per key and version', async () => {
  let t = 0;
  const memo = new TtlMemo(() => t);
  let calls = 0;
  const fn = async () => ++calls;
  assert.equal(await memo.get('k', 1000, () => true, fn), 1);
  assert.equal(await memo.get('k', 1000, () => true, fn), 1);
  t = 1000;
  assert.equal(await memo.get('k', 1000, () => true, fn), 2);
  assert.equal(await memo.get('bad', 1000, () => false, fn), 3);
  assert.equal(await memo.get('bad', 1000, () => false, fn), 4, 'a bad answer is asked again');
  t = 5000;
  const together = await Promise.all(Array.from({ length: 20 }, () => memo.get('k', 1000, () => true, fn)));
  assert.deepEqual(new Set(together), new Set([5]), 'concurrent callers share one run');

  const sf = new SingleFlight();
  let runs = 0;
  let release!: () => void;
  const job = () => { runs++; return new Promise<void>((r) => { release = r; }); };
  const callers = Array.from({ length: 50 }, () => sf.once('pair', 'v1', job));
  release();
  await Promise.all(callers);
  assert.equal(runs, 1, '50 concurrent callers, one run');
  await sf.once('pair', 'v1', job);
  assert.equal(runs, 1, 'already done at this version');
  const again = sf.once('pair', 'v2', job);
  release();
  await again;
  assert.equal(runs, 2, 'a new version runs again');
});

test('label selectors: equality and existence are evaluated on the cache, anything else goes to the API', () => {
  const reqs = parseLabelSelector('a=b,c!=d,e,!f')!;
  assert.ok(matchesLabels({ a: 'b', e: '' }, reqs));
  assert.ok(!matchesLabels({ a: 'b', e: '', f: 'x' }, reqs));
  assert.ok(!matchesLabels({ a: 'b', c: 'd', e: '' }, reqs));
  assert.equal(parseLabelSelector('a in (b,c)'), undefined);
});

test('CachedReader: a healthy informer answers; no informer, or one that cannot list, means the API', async () => {
  const live: string[] = [];
  const client = {
    tryGet: async (_r: unknown, ns: string, name: string) => { live.push(`get ${ns}/${name}`); return { metadata: { name, namespace: ns, resourceVersion: 'live' } }; },
    list: async (_r: unknown, ns: string) => { live.push(`list ${ns}`); return { items: [] }; },
  } as unknown as KubeClient;
  const ok = new Informer<KubeObject>({
    list: async () => ({ items: [{ metadata: { name: 'a', namespace: 'ns', resourceVersion: '1', labels: { l: 'x' } } }], metadata: { resourceVersion: '1' } }),
    watch: (_rv, _on, signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
  });
  const broken = new Informer<KubeObject>({ list: async () => { throw new Error('403'); }, watch: async () => {} }, { backoff: undefined });
  const r = new CachedReader(client, { syncWaitMs: 2000 });
  r.register(Res.vm, ok);
  r.register(Res.configMap, broken, 'kubevirt');
  ok.start();
  broken.start();
  try {
    assert.equal((await r.get(Res.vm, 'ns', 'a'))?.metadata?.resourceVersion, '1');
    assert.equal(await r.get(Res.vm, 'ns', 'missing'), undefined, 'absent from a synced cache: absent');
    assert.deepEqual((await r.list(Res.vm, 'ns', 'l=x')).map((o) => o.metadata?.name), ['a']);
    assert.equal(live.length, 0);
    await r.get(Res.vmi, 'ns', 'a');
    await r.get(Res.configMap, 'other', 'x');
    await r.list(Res.vm, 'ns', 'l in (x)');
    await new Promise((res) => setTimeout(res, 20));
    await r.get(Res.configMap, 'kubevirt', 'kubevirt-ca');
    assert.deepEqual(live, ['get ns/a', 'get other/x', 'list ns', 'get kubevirt/kubevirt-ca']);
    assert.deepEqual(r.stats, { cached: 3, live: 4 });
  } finally {
    await ok.stop();
    await broken.stop();
  }
});

test('phases passed straight through fold their Event into the next one; the rest keep theirs', () => {
  const n = (reason: string, message: string) => ({ type: 'Normal' as const, reason, message });
  assert.deepEqual(foldPassThroughEvents([n('ConnectingLink', 'started'), n('SyncingStorage', 'link ready'), n('PreparingTarget', 'storage copy delegated to KubeVirt')]), [
    n('ConnectingLink', 'started'), n('PreparingTarget', 'storage copy delegated to KubeVirt (passed through SyncingStorage: link ready)'),
  ]);
  assert.deepEqual(foldPassThroughEvents([n('AwaitingCutover', 'target prepared'), n('MigratingMemory', 'gate open')]), [n('MigratingMemory', 'gate open (passed through AwaitingCutover: target prepared)')]);
  const stays = [n('AwaitingCutover', 'target prepared')];
  assert.deepEqual(foldPassThroughEvents(stays), stays, 'a phase the migration stays in keeps its Event');
  const warn = [n('SyncingStorage', 'link ready'), { type: 'Warning' as const, reason: 'StoragePreCopyUnavailable', message: 'x' }];
  assert.deepEqual(foldPassThroughEvents(warn), warn);
  assert.deepEqual(foldPassThroughEvents([n('CuttingOver', 'a'), n('Succeeded', 'b')]), [n('CuttingOver', 'a'), n('Succeeded', 'b')]);
});
