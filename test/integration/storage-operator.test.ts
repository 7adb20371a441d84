// storage.mode CloudNetPreCopy through the operator: it creates the target volume, launches the
// target and source agent Pods (run by the node stand-ins as real `cloudnet agent` processes, with
// the Pods' volumes and Secrets), follows the copy, stops the agents before the receiver VM is
// made, and cleans up after success, abort, deletion and failure. The KubeVirt stand-in runs the
// VMs without QEMU here, so no final mirror: the disk must be byte-identical after the pre-copy
// alone (the guest stops writing before it converges).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { siteClustersFrom, siteControllerFactory, wanMigrationControllerFactory } from '../../src/controller/index.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import { KubeAgentLauncher, POD } from '../../src/storage/launch/launcher.ts';
import { AgentStoragePreCopy } from '../../src/storage/provider.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { useClusters } from '../env/index.ts';
import { onExit } from '../helpers/exit.ts';
import { ensure, eventsFor, FAST_PLAN, getWM, OPERATOR_NS, operatorConfig, setupBed, waitForPhase, wanMigration, type Bed } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';
import { NodeStandIn } from '../standin/node-standin.ts';

const MiB = 1 << 20;
let bed: Bed;
let op: RunningOperator | undefined;
let nodeA: NodeStandIn;
let nodeB: NodeStandIn;
const work = mkdtempSync(join(tmpdir(), 'cn-storage-op-'));
const unregister = onExit(() => rmSync(work, { recursive: true, force: true }));

after(async () => {
  await op?.stop();
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  await bed?.stop();
  rmSync(work, { recursive: true, force: true });
  unregister();
});

const pool = (net: string) => Array.from({ length: 100 }, (_, i) => `${net}.${i + 10}`);

useClusters(2, {
  setup: async (clusters) => {
    bed = await setupBed(clusters);
    nodeA = new NodeStandIn({ client: bed.src, nodeName: 'site-a-node', workDir: join(work, 'site-a'), podIPs: pool('127.0.1'), hostIP: '127.0.1.1' });
    nodeB = new NodeStandIn({ client: bed.dst, nodeName: 'site-b-node', workDir: join(work, 'site-b'), podIPs: pool('127.0.2'), hostIP: '127.0.2.1' });
    nodeA.start();
    nodeB.start();
    // The operator's own wiring (operator/controllers.ts), with the test's fast polling.
    op = await startOperator(operatorConfig(bed.a.kubeConfig), [
      (d) => wanMigrationControllerFactory({
        plan: FAST_PLAN,
        storage: new AgentStoragePreCopy({ launcher: new KubeAgentLauncher({ local: d.manager.client, clusters: siteClustersFrom(d.manager.clusters, d.namespace), namespace: d.namespace, image: { image: 'cloudnet/operator:0.1.0' } }) }),
      })(d),
      siteControllerFactory({ notReadyRetryMs: 500 }),
    ]);
  },
});

/** A disk image: random, text-like and zero regions (like a used file system). */
function diskContent(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  crypto.randomFillSync(b, 0, bytes / 4);
  b.fill('kernel module config cloudnet storage block page\n', bytes / 4, bytes / 2);
  return b;
}

type PVCObj = KubeObject & { status?: { phase?: string } };
type PodObj = KubeObject & { spec: { nodeName?: string; volumes?: Array<{ persistentVolumeClaim?: { claimName: string; readOnly?: boolean } }> }; status?: { phase?: string } };

/** A VM whose disk is a DataVolume-backed PVC holding `content` (disk.img, or the raw block device). */
async function sourceVM(ns: string, vm: string, content: Buffer, mode: 'Filesystem' | 'Block'): Promise<string> {
  const c = bed.src;
  await ensure(c, Res.namespace, { metadata: { name: ns } });
  await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
  const claim = `${vm}-root`;
  const storage = { resources: { requests: { storage: `${content.length / MiB}Mi` } }, storageClassName: 'local-path', accessModes: ['ReadWriteOnce'], volumeMode: mode };
  await ensure(c, Res.pvc, { metadata: { name: claim, namespace: ns }, spec: storage });
  await ensure(c, Res.dataVolume, { metadata: { name: claim, namespace: ns }, spec: { source: { blank: {} }, storage } });
  await waitFor(async () => (await c.get<PVCObj>(Res.pvc, ns, claim)).status?.phase === 'Bound' && nodeA.volumes.diskImage(ns, claim), { what: `PVC ${claim} bound`, timeoutMs: 20_000 });
  const image = nodeA.volumes.diskImage(ns, claim)!;
  if (mode === 'Block') {
    const fd = openSync(image, 'r+');
    writeSync(fd, content, 0, content.length, 0);
    closeSync(fd);
  } else {
    writeFileSync(image, content);
  }
  await c.create(Res.vm, {
    metadata: { name: vm, namespace: ns },
    spec: {
      runStrategy: 'Always',
      template: { spec: { domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }] }, memory: { guest: '512Mi' } }, volumes: [{ name: 'root', dataVolume: { name: claim } }] } },
    },
  });
  await waitFor(async () => (await c.tryGet<PVCObj>(Res.vmi, ns, vm))?.status?.phase === 'Running', { what: 'source VMI Running', timeoutMs: 20_000 });
  return image;
}

/** Everything the pre-copy of migration `uid` left behind, on both clusters. */
async function agentLeftovers(ns: string, uid: string, opts: { volumes: boolean }): Promise<string[]> {
  const sel = { labelSelector: `cloudnet.io/migration-uid=${uid}` };
  const out: string[] = [];
  const add = async (c: KubeClient, ref: Parameters<KubeClient['list']>[0], namespace: string, where: string) => {
    for (const o of (await c.list(ref, namespace, sel)).items) if (!o.metadata?.deletionTimestamp) out.push(`${where} ${ref.kind} ${o.metadata?.name}`);
  };
  await add(bed.src, POD, ns, 'source');
  await add(bed.src, Res.secret, ns, 'source');
  await add(bed.src, Res.secret, OPERATOR_NS, 'operator');
  await add(bed.dst, POD, ns, 'target');
  await add(bed.dst, Res.secret, ns, 'target');
  if (opts.volumes) {
    await add(bed.dst, Res.pvc, ns, 'target');
    await add(bed.dst, Res.dataVolume, ns, 'target');
  }
  return out;
}

/** Waits for `phase`; on a timeout, says where the migration and its agents were. */
async function phaseOrDiagnose(ns: string, phase: string, timeoutMs: number) {
  try {
    return await waitForPhase(bed.src, ns, 'mig', phase, timeoutMs);
  } catch (e) {
    const wm = await getWM(bed.src, ns, 'mig');
    const pods = [...(await bed.src.list<PodObj>(POD, ns)).items, ...(await bed.dst.list<PodObj>(POD, ns)).items];
    const logs = pods.map((p) => {
      const node = p.spec.nodeName === 'site-a-node' ? nodeA : nodeB;
      try { return `--- ${p.metadata?.name} (${p.status?.phase})\n${readFileSync(node.logFile(ns, p.metadata?.name ?? ''), 'utf8').split('\n').slice(-15).join('\n')}`; } catch { return `--- ${p.metadata?.name} (${p.status?.phase}): no log`; }
    });
    throw new Error(`${(e as Error).message}\nstatus: ${JSON.stringify(wm?.status, null, 1)}\n${logs.join('\n')}\nnode stand-in errors: ${nodeA.errors}/${nodeB.errors} ${String(nodeA.lastError ?? nodeB.lastError ?? '')}`);
  }
}

describe('CloudNetPreCopy through the operator', () => {
  test('filesystem disk: volume first, agents on the right nodes, pre-copied, agents gone after success', { timeout: 240_000 }, async () => {
    const ns = 'pc-fs';
    const content = diskContent(48 * MiB);
    const image = await sourceVM(ns, 'vm', content, 'Filesystem');
    // The guest wrote a few blocks before (writes during the copy need the final mirror: e2e).
    const fd = openSync(image, 'r+');
    for (let i = 0; i < 16; i++) writeSync(fd, crypto.randomBytes(4096), 0, 4096, (i * 3 + 1) * MiB);
    closeSync(fd);
    const expected = await sha256File(image);
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', storage: { mode: 'CloudNetPreCopy' } }));
    const pods = await waitFor(async () => {
      const s = (await bed.src.list<PodObj>(POD, ns)).items.find((p) => p.status?.phase === 'Running');
      const t = (await bed.dst.list<PodObj>(POD, ns)).items.find((p) => p.status?.phase === 'Running');
      return s && t ? { s, t } : undefined;
    }, { what: 'both agent Pods running', timeoutMs: 60_000, intervalMs: 100 });
    // The source agent runs on the VMI's node and reads the VM's claim read-only.
    assert.equal(pods.s.spec.nodeName, 'site-a-node');
    assert.deepEqual(pods.s.spec.volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim, { claimName: 'vm-root', readOnly: true });
    assert.equal(pods.t.spec.volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim?.claimName, 'vm-root');

    const wm = await phaseOrDiagnose(ns, 'Succeeded', 120_000);
    // Deadlines fixed at the start from the data (48 MiB disk, 512 MiB memory: the floors here).
    assert.deepEqual([wm.status?.deadlines?.storageSeconds, wm.status?.deadlines?.memorySeconds], [3600, 1800]);
    assert.match(wm.status?.deadlines?.basis ?? '', /memory 512 MiB, disks 48 MiB/);
    const synced = findCondition(wm.status?.conditions, 'StorageSynced');
    assert.equal(synced?.status, 'True', JSON.stringify(synced));
    assert.equal(synced?.reason, 'Converged');
    assert.ok((wm.status?.progress?.bytesTotal ?? 0) >= 48 * MiB, JSON.stringify(wm.status?.progress));
    assert.ok((wm.status?.progress?.bytesOverWan ?? 0) < 40 * MiB, `the zero quarter and the text half must shrink: ${JSON.stringify(wm.status?.progress)}`);
    // The target volume is the receiver's disk: the pre-copied PVC, adopted by its DataVolume.
    const dv = await bed.dst.get(Res.dataVolume, ns, 'vm-root');
    assert.equal(dv.metadata?.annotations?.['cdi.kubevirt.io/storage.prePopulated'], 'vm-root');
    const target = nodeB.volumes.diskImage(ns, 'vm-root')!;
    assert.equal(await sha256File(target), expected, 'target disk differs from the source disk');
    assert.equal(await sha256File(image), expected, 'the source disk was modified by the agents');
    assert.deepEqual(await waitFor(async () => {
      const l = await agentLeftovers(ns, wm.metadata.uid!, { volumes: false });
      return l.length === 0 ? l : undefined;
    }, { what: 'agents cleaned up', timeoutMs: 20_000 }), []);
    assert.ok(await bed.dst.tryGet(Res.pvc, ns, 'vm-root'), 'the target volume must stay after success');
    for (const e of await eventsFor(bed.src, ns, 'mig')) assert.doesNotMatch(e.note ?? '', /"|\{/, `Event ${e.reason} carries raw agent text: ${e.note}`);
  });

  test('block disk, aborted mid-copy: everything launched is removed, the source untouched', { timeout: 180_000 }, async () => {
    const ns = 'pc-block';
    const content = diskContent(64 * MiB);
    const image = await sourceVM(ns, 'vm', content, 'Block');
    const before = crypto.createHash('sha256').update(readFileSync(image).subarray(0, content.length)).digest('hex');
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', storage: { mode: 'CloudNetPreCopy' } }));
    await waitFor(async () => (await bed.dst.list<PodObj>(POD, ns)).items.length > 0, { what: 'the target agent Pod', timeoutMs: 60_000, intervalMs: 100 });
    await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
    const wm = await phaseOrDiagnose(ns, 'Aborted', 60_000);
    assert.deepEqual(await waitFor(async () => {
      const l = await agentLeftovers(ns, wm.metadata.uid!, { volumes: true });
      return l.length === 0 ? l : undefined;
    }, { what: 'everything removed', timeoutMs: 30_000 }), []);
    const after = crypto.createHash('sha256').update(readFileSync(image).subarray(0, content.length)).digest('hex');
    assert.equal(after, before, 'the source disk was modified');
  });

  test('deleted mid-copy: rolled back, cleaned up, and the WanMigration goes away', { timeout: 180_000 }, async () => {
    const ns = 'pc-delete';
    await sourceVM(ns, 'vm', diskContent(32 * MiB), 'Filesystem');
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', storage: { mode: 'CloudNetPreCopy' } }));
    const started = await waitFor(async () => {
      const w = await getWM(bed.src, ns, 'mig');
      return (await bed.src.list<PodObj>(POD, ns)).items.length > 0 ? w : undefined;
    }, { what: 'the source agent Pod', timeoutMs: 60_000, intervalMs: 100 });
    await bed.src.delete(Res.wanMigration, ns, 'mig');
    await waitFor(async () => !(await getWM(bed.src, ns, 'mig')), { what: 'WanMigration gone', timeoutMs: 60_000 });
    assert.deepEqual(await agentLeftovers(ns, started.metadata.uid!, { volumes: true }), []);
  });

  test('a target volume the API server refuses fails the step: rolled back, nothing left', { timeout: 120_000 }, async () => {
    const ns = 'pc-reject';
    await sourceVM(ns, 'vm', diskContent(8 * MiB), 'Filesystem');
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', storage: { mode: 'CloudNetPreCopy', storageClassMap: { 'local-path': 'Not_A_Valid/Name' } } }));
    const wm = await phaseOrDiagnose(ns, 'Failed', 60_000);
    assert.equal(wm.status?.failureReason, 'StorageSyncFailed');
    assert.match(wm.status?.failureMessage ?? '', /Not_A_Valid/);
    assert.deepEqual(await agentLeftovers(ns, wm.metadata.uid!, { volumes: true }), []);
  });
});
