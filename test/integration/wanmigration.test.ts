// WanMigration end to end on two real API servers with the KubeVirt stand-in: the sample reaches
// Succeeded, a hung VMIM trips the deadline, and spec changes are guarded or recorded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { binDir } from '../env/index.ts';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import { parseCABundle } from '../../src/controller/ca-bundle.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import type { WanMigration } from '../../src/api/wanmigration.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { RunningOperator } from '../../src/operator/main.ts';
import {
  createVM, eventsFor, getWM, leftovers, loadSample, useOperatorBed, waitForCondition, waitForEvent, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
let op: RunningOperator;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

async function kubectl(...args: string[]): Promise<string> {
  const bin = join(binDir, 'kubectl');
  if (!existsSync(bin)) throw new Error(`kubectl not found at ${bin}: run hack/setup.sh`);
  const { stdout } = await promisify(execFile)(bin, ['--kubeconfig', bed.a.kubeconfigPath, ...args]);
  return stdout;
}
useOperatorBed((b, o) => { bed = b; op = o; });

type VM = KubeObject & { spec: { runStrategy?: string }; metadata: { annotations?: Record<string, string> } };
type VMI = KubeObject & { status?: { phase?: string } };

describe('config/samples/wanmigration.yaml', () => {
  test('reaches Succeeded with every condition True; the target VM runs with its run strategy restored', async () => {
    await createVM(bed.src, 'default', 'vm-a');
    await waitFor(async () => (await bed.src.tryGet<VMI>(Res.vmi, 'default', 'vm-a'))?.status?.phase === 'Running', { what: 'source VMI Running' });
    assert.equal(loadSample<KubeObject>('wanmigration.yaml')[0].metadata?.name, 'vm-a-to-site-b');
    await kubectl('apply', '-f', join(repoRoot, 'config/samples/wanmigration.yaml'));
    const wm = await waitForPhase(bed.src, 'default', 'vm-a-to-site-b', 'Succeeded', 30_000);
    // The printer columns and short name work in kubectl.
    const table = await kubectl('get', 'wm', '-n', 'default', 'vm-a-to-site-b');
    assert.match(table, /NAME\s+VM\s+TARGET\s+PHASE\s+PROGRESS\s+RATIO\s+READY\s+AGE/);
    assert.match(table, /vm-a-to-site-b\s+vm-a\s+site-b\s+Succeeded\s+100\s+(<none>)?\s*True/);
    for (const t of ['Ready', 'LinkReady', 'StorageSynced', 'TargetPrepared', 'MemoryMigrated', 'CutoverComplete']) {
      assert.equal(findCondition(wm.status?.conditions, t)?.status, 'True', `${t}: ${JSON.stringify(findCondition(wm.status?.conditions, t))}`);
    }
    assert.equal(findCondition(wm.status?.conditions, 'Reconciling')?.status, 'False');
    assert.equal(findCondition(wm.status?.conditions, 'Stalled')?.status, 'False');
    // Without a link provider the link condition says exactly what was (not) checked.
    assert.equal(findCondition(wm.status?.conditions, 'LinkReady')?.reason, 'ClusterAPIReachable');
    assert.equal(findCondition(wm.status?.conditions, 'StorageSynced')?.reason, 'DelegatedToKubeVirt');
    assert.equal(wm.status?.observedGeneration, wm.metadata.generation);
    assert.equal(wm.status?.progress?.percent, 100);
    assert.equal(wm.status?.migrationID, wm.metadata.uid);
    assert.deepEqual(wm.status?.targetVMRef, { site: 'site-b', namespace: 'default', name: 'vm-a' });
    assert.ok(wm.status?.startTime && wm.status.completionTime);

    const tvm = await bed.dst.get<VM>(Res.vm, 'default', 'vm-a');
    assert.equal(tvm.spec.runStrategy, 'Always');
    // KubeVirt restores the run strategy and leaves the annotation in place (vm.go).
    assert.equal(tvm.metadata.annotations?.['kubevirt.io/restore-run-strategy'], 'Always');
    assert.equal((await bed.dst.get<VMI>(Res.vmi, 'default', 'vm-a')).status?.phase, 'Running');
    // Source: stopped (sourceAfterCutover: Stop), not deleted.
    assert.equal((await bed.src.get<VM>(Res.vm, 'default', 'vm-a')).spec.runStrategy, 'Halted');
    // Disks, the cloud-init Secret and the ConfigMap were recreated on the target; storage class mapped.
    const dv = await bed.dst.get<KubeObject & { spec: { storage: { storageClassName?: string }; source: unknown } }>(Res.dataVolume, 'default', 'vm-a-root');
    assert.equal(dv.spec.storage.storageClassName, 'standard');
    assert.deepEqual(dv.spec.source, { blank: {} });
    assert.ok(await bed.dst.tryGet(Res.secret, 'default', 'vm-a-cloudinit'));
    assert.ok(await bed.dst.tryGet(Res.configMap, 'default', 'vm-a-config'));
    // Mutual CA trust, as virt-operator leaves it: each cluster's own CA (the first certificate of
    // its kubevirt-ca; real PEM) was put in the other's kubevirt-external-ca inbox, then imported
    // into the other's kubevirt-ca, and the inbox was emptied.
    const own = new Map<KubeClient, string>();
    for (const c of [bed.src, bed.dst]) {
      const ca = await c.get<KubeObject & { data: Record<string, string> }>(Res.configMap, 'kubevirt', 'kubevirt-ca');
      own.set(c, new X509Certificate(ca.data['ca-bundle']).fingerprint256);
    }
    for (const [from, to] of [[bed.src, bed.dst], [bed.dst, bed.src]] as const) {
      await waitFor(async () => {
        const ca = await to.get<KubeObject & { data: Record<string, string> }>(Res.configMap, 'kubevirt', 'kubevirt-ca');
        return parseCABundle(ca.data['ca-bundle']).certs.some((x) => x.fingerprint256 === own.get(from));
      }, { what: `${to.clusterName} trusts ${from.clusterName}'s CA in kubevirt-ca` });
      await waitFor(async () => (await to.get<KubeObject & { data: Record<string, string> }>(Res.configMap, 'kubevirt', 'kubevirt-external-ca')).data['ca-bundle'] === '', { what: `${to.clusterName}'s kubevirt-external-ca drained` });
    }
    // Exactly one VMIM pair, sharing the migration ID, both Succeeded.
    const sv = (await bed.src.list<KubeObject & { spec: { sendTo?: { migrationID: string; connectURL: string } }; status?: { phase?: string } }>(Res.vmim, 'default')).items;
    const tv = (await bed.dst.list<KubeObject & { spec: { receive?: { migrationID: string } }; status?: { phase?: string } }>(Res.vmim, 'default')).items;
    assert.equal(sv.length, 1);
    assert.equal(tv.length, 1);
    assert.equal(sv[0].spec.sendTo?.migrationID, tv[0].spec.receive?.migrationID);
    assert.equal(sv[0].spec.sendTo?.connectURL, '192.0.2.2:9185');
    assert.equal(sv[0].status?.phase, 'Succeeded');
    assert.equal(tv[0].status?.phase, 'Succeeded');
    const reasons = (await eventsFor(bed.src, 'default', 'vm-a-to-site-b')).map((e) => e.reason);
    for (const r of ['ConnectingLink', 'PreparingTarget', 'MigratingMemory', 'CuttingOver', 'Succeeded']) assert.ok(reasons.includes(r), `event ${r} in ${reasons}`);
    const metrics = await op.manager.metrics.registry.metrics();
    assert.match(metrics, /cloudnet_wanmigration_phase\{namespace="default",name="vm-a-to-site-b",phase="Succeeded"\} 1/);
    assert.match(metrics, /cloudnet_wanmigration_duration_seconds_count\{outcome="Succeeded"\} 1/);
    // Deleting a finished migration leaves the migrated VM alone.
    await bed.src.delete(Res.wanMigration, 'default', 'vm-a-to-site-b');
    await waitFor(async () => !(await getWM(bed.src, 'default', 'vm-a-to-site-b')), { what: 'WanMigration gone' });
    assert.ok(await bed.dst.tryGet(Res.vm, 'default', 'vm-a'));
  });
});

describe('sourceAfterCutover', () => {
  for (const mode of ['Delete', 'Keep'] as const) {
    test(`${mode}: applied only after the target VMI runs`, async () => {
      const ns = `after-${mode.toLowerCase()}`;
      await createVM(bed.src, ns, 'vm');
      await ensureTargetNs(ns);
      await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', sourceAfterCutover: mode }));
      await waitForPhase(bed.src, ns, 'mig', 'Succeeded', 30_000);
      assert.equal((await bed.dst.get<VMI>(Res.vmi, ns, 'vm')).status?.phase, 'Running');
      if (mode === 'Delete') assert.equal(await bed.src.tryGet<VM>(Res.vm, ns, 'vm'), undefined);
      // KubeVirt itself halts a runStrategy Always source once its VMI migrated away (vm.go); Keep
      // only means the operator leaves the VM object alone.
      else await waitFor(async () => (await bed.src.tryGet<VM>(Res.vm, ns, 'vm'))?.spec.runStrategy === 'Halted', { what: 'source VM kept and halted by KubeVirt' });
    });
  }
});

describe('deadlines', () => {
  test('a VMIM hung in WaitingForSync trips the memory deadline: Stalled, rolled back, source running', async () => {
    const ns = 'hung';
    await createVM(bed.src, ns, 'vm-h', { annotations: { [ANNOTATIONS.hangAt]: 'WaitingForSync' } });
    await ensureTargetNs(ns);
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-h', timeouts: { memorySeconds: 2 } }));
    await waitForCondition(bed.src, ns, 'mig', 'MemoryMigrated', 'False', 'InProgress');
    // A pair that waits is quiet: the stand-in does not rewrite unchanged status every tick.
    // Counted in this test's namespace only: other tests of the suite run at the same time.
    const writes = () => (bed.standA.writesByNamespace.get(ns) ?? 0) + (bed.standB.writesByNamespace.get(ns) ?? 0);
    // The pair may still be stepping to the hang point on a loaded machine, so look for one quiet
    // 500 ms window within a few seconds; a write loop never has one.
    let burst = Infinity;
    for (let i = 0; i < 8 && burst > 3; i++) {
      const w0 = writes();
      await new Promise((r) => setTimeout(r, 500));
      burst = writes() - w0;
    }
    assert.ok(burst <= 3, `stand-in kept writing (${burst} writes in the last 500 ms) while the pair waited`);
    const wm = await waitForPhase(bed.src, ns, 'mig', 'Failed', 20_000);
    const stalled = findCondition(wm.status?.conditions, 'Stalled');
    assert.equal(stalled?.status, 'True');
    assert.equal(stalled?.reason, 'DeadlineExceeded');
    assert.match(stalled?.message ?? '', /MigratingMemory exceeded its deadline of 2s/);
    assert.equal(wm.status?.failureReason, 'DeadlineExceeded');
    await waitForEvent(bed.src, ns, 'mig', 'DeadlineExceeded');
    // The receiver's decentralizedMigrationBlocked ("waiting for incoming synchronization") is
    // KubeVirt's normal state in WaitingForSync, not a stall of its own.
    assert.ok(!(await eventsFor(bed.src, ns, 'mig')).some((e) => e.reason === 'DecentralizedMigrationBlocked'));
    assert.deepEqual(await leftovers(bed, ns, ns, wm.metadata.uid!), []);
    assert.ok(!(await bed.dst.tryGet(Res.vm, ns, 'vm-h')), 'target VM removed');
    const vm = await bed.src.get<VM>(Res.vm, ns, 'vm-h');
    assert.equal(vm.spec.runStrategy, 'Always');
    assert.equal((await bed.src.get<VMI>(Res.vmi, ns, 'vm-h')).status?.phase, 'Running');
  });
});

describe('decentralizedMigrationBlocked', () => {
  test('a blocked VMIM gives Stalled with KubeVirt\'s message and an Event, then the deadline rolls back', async () => {
    const ns = 'blocked';
    await createVM(bed.src, ns, 'vm-b', { annotations: { [ANNOTATIONS.blocked]: 'target synchronization controller unreachable' } });
    await ensureTargetNs(ns);
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-b', timeouts: { memorySeconds: 3 } }));
    const wm = await waitForCondition(bed.src, ns, 'mig', 'Stalled', 'True', 'DecentralizedMigrationBlocked');
    assert.equal(findCondition(wm.status?.conditions, 'Stalled')?.message, 'target synchronization controller unreachable');
    // The 3 s memory deadline may already have fired when this status is read (a loaded machine):
    // the stall is reported from MigratingMemory, and the rollback may have begun.
    assert.ok(['MigratingMemory', 'RollingBack', 'Failed'].includes(wm.status?.phase ?? ''), `phase ${wm.status?.phase}`);
    await waitForEvent(bed.src, ns, 'mig', 'DecentralizedMigrationBlocked');
    const failed = await waitForPhase(bed.src, ns, 'mig', 'Failed');
    assert.equal(failed.status?.failureReason, 'DeadlineExceeded');
    assert.match(failed.status?.failureMessage ?? '', /DecentralizedMigrationBlocked/);
    assert.deepEqual(await leftovers(bed, ns, ns, failed.metadata.uid!), []);
  });
});

async function ensureTargetNs(ns: string): Promise<void> {
  await bed.dst.create(Res.namespace, { metadata: { name: ns } }).catch(() => undefined);
}

describe('spec changes mid-flight', () => {
  test('immutable fields are rejected by CEL; other changes are recorded (SpecChangeIgnored) but not applied', async () => {
    const ns = 'changes';
    await createVM(bed.src, ns, 'vm-c');
    await ensureTargetNs(ns);
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-c', cutover: { mode: 'Manual' } }));
    await waitForPhase(bed.src, ns, 'mig', 'AwaitingCutover');
    for (const [field, value] of [['vmName', 'other'], ['targetSite', 'elsewhere'], ['targetNamespace', 'elsewhere']] as const) {
      await assert.rejects(bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { [field]: value } }), new RegExp(`${field} is immutable`));
    }
    await assert.rejects(bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { storage: { mode: 'CloudNetPreCopy' } } }), /storage.mode is immutable/);
    await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { relay: { enabled: true, cacheSizeMiB: 64 } } });
    const wm = await waitForCondition(bed.src, ns, 'mig', 'Reconciling', 'True', 'SpecChangeIgnored');
    assert.equal(wm.status?.observedGeneration, wm.metadata.generation);
    assert.equal(wm.status?.startedWith?.relay?.enabled, false, 'the migration keeps the relay setting it started with');
    await waitForEvent(bed.src, ns, 'mig', 'SpecChangeIgnored');
    // Approving the cutover is a change that does apply.
    await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { cutover: { approved: true } } });
    await waitForPhase(bed.src, ns, 'mig', 'Succeeded', 30_000);
  });

  test('CEL: a Window cutover needs a window', async () => {
    await assert.rejects(
      bed.src.create(Res.wanMigration, wanMigration('default', 'bad-window', { vmName: 'x', cutover: { mode: 'Window' } })),
      /cutover.window is required/,
    );
  });
});

export type { WanMigration };
