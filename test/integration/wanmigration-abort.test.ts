// spec.abort at every phase: before the point of no return the migration rolls back (both VMIMs
// and every target object we created are deleted) and ends Aborted with the source VM running;
// after it (memory already moved) the abort is refused with an Event and the migration completes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import {
  assertSourceIntact, createVM, ensure, getWM, leftovers, migrateUntilHeld, useOperatorBed, waitForCondition, waitForEvent, waitForPhase,
  waitForSourceVmimPhase, wanMigration, type Bed, type HoldPoint,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { HOLD_LINK_ANNOTATION, HoldableLink } from '../standin/test-link.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
useOperatorBed((b) => { bed = b; }, { link: new HoldableLink() });

interface Hold extends HoldPoint {
  cleanup?: () => void;
}

/** Memory migration in flight: the stand-in KubeVirt hangs the source VMIM at `phase`. */
const memoryHeldAt = (phase: string): Hold => ({
  name: `MigratingMemory (VMIM ${phase})`, vmAnnotations: { [ANNOTATIONS.hangAt]: phase }, reached: (ns) => waitForSourceVmimPhase(bed, ns, phase),
});

const holds: Hold[] = [
  { name: 'ConnectingLink', wmAnnotations: { [HOLD_LINK_ANNOTATION]: 'true' }, reached: (ns) => waitForCondition(bed.src, ns, 'mig', 'LinkReady', 'False', 'HeldByTest') },
  { name: 'SyncingStorage', spec: { storage: { mode: 'CloudNetPreCopy' } }, reached: (ns) => waitForCondition(bed.src, ns, 'mig', 'Stalled', 'True', 'StoragePreCopyUnavailable') },
  {
    name: 'PreparingTarget', before: () => { bed.standB.holdReceivers = true; }, cleanup: () => { bed.standB.holdReceivers = false; },
    reached: async (ns) => {
      await waitForPhase(bed.src, ns, 'mig', 'PreparingTarget');
      await waitFor(() => bed.dst.tryGet(Res.vm, ns, 'vm'), { what: 'target VM created' });
    },
  },
  { name: 'AwaitingCutover', spec: { cutover: { mode: 'Manual' } }, reached: (ns) => waitForPhase(bed.src, ns, 'mig', 'AwaitingCutover') },
  ...['Synchronizing', 'Scheduling', 'PreparingTarget', 'Running'].map(memoryHeldAt),
];

describe('abort', () => {
  holds.forEach((h, i) => {
    test(`at ${h.name}: rolled back, source intact, no target leftovers`, async () => {
      const ns = `abort-${i}`;
      try {
        await migrateUntilHeld(bed, ns, h);
        await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
        const wm = await waitForPhase(bed.src, ns, 'mig', 'Aborted');
        assert.equal(wm.status?.failureReason, 'Aborted');
        assert.equal(findCondition(wm.status?.conditions, 'Ready')?.reason, 'Aborted');
        assert.equal(findCondition(wm.status?.conditions, 'Stalled')?.status, 'False');
        await waitForEvent(bed.src, ns, 'mig', 'Aborted');
        assert.deepEqual(await leftovers(bed, ns, ns, wm.metadata.uid!), []);
        assert.equal(await bed.dst.tryGet(Res.vm, ns, 'vm'), undefined);
        assert.equal((await bed.src.list(Res.vmim, ns)).items.length, 0);
        assert.equal((await bed.dst.list(Res.vmim, ns)).items.length, 0);
        await assertSourceIntact(bed, ns, 'vm');
        // The finished, aborted migration can be deleted without side effects.
        await bed.src.delete(Res.wanMigration, ns, 'mig');
        await waitFor(async () => !(await getWM(bed.src, ns, 'mig')), { what: 'deleted' });
        await assertSourceIntact(bed, ns, 'vm');
      } finally {
        h.cleanup?.();
      }
    });
  });

  test('deleting the WanMigration mid-flight rolls back the same way (finalizer)', async () => {
    const ns = 'abort-delete';
    await migrateUntilHeld(bed, ns, memoryHeldAt('Synchronizing'));
    const uid = (await getWM(bed.src, ns, 'mig'))!.metadata.uid!;
    await bed.src.delete(Res.wanMigration, ns, 'mig');
    await waitFor(async () => !(await getWM(bed.src, ns, 'mig')), { what: 'WanMigration gone' });
    assert.deepEqual(await leftovers(bed, ns, ns, uid), []);
    await assertSourceIntact(bed, ns, 'vm');
  });

  test('deleting the target VMIM behind the operator\'s back cancels the pair (KubeVirt finalizer); the operator rolls back with MigrationCancelled', async () => {
    const ns = 'abort-vmim';
    await migrateUntilHeld(bed, ns, memoryHeldAt('Running'));
    const [target] = (await bed.dst.list(Res.vmim, ns)).items;
    assert.ok(target.metadata?.finalizers?.includes('synchronization.kubevirt.io/migrationFinalizer'), 'KubeVirt holds decentralized VMIMs with a finalizer');
    await bed.dst.delete(Res.vmim, ns, target.metadata?.name ?? '');
    const wm = await waitForPhase(bed.src, ns, 'mig', 'Failed');
    assert.equal(wm.status?.failureReason, 'MigrationCancelled');
    assert.deepEqual(await leftovers(bed, ns, ns, wm.metadata.uid!), []);
    await assertSourceIntact(bed, ns, 'vm');
  });

  test('after the memory moved (CuttingOver) abort is refused with an Event and the migration completes', async () => {
    const ns = 'abort-late';
    await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
    await createVM(bed.src, ns, 'vm');
    bed.standB.holdCompletion = true;
    try {
      await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm' }));
      await waitForPhase(bed.src, ns, 'mig', 'CuttingOver');
      await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
      await waitForEvent(bed.src, ns, 'mig', 'AbortIgnored');
    } finally {
      bed.standB.holdCompletion = false;
    }
    await waitForPhase(bed.src, ns, 'mig', 'Succeeded');
    assert.ok(await bed.dst.tryGet(Res.vm, ns, 'vm'));
  });

  test('a KubeVirt failure (injected at Synchronizing) rolls back to Failed with the reason', async () => {
    const ns = 'abort-fail';
    await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
    await createVM(bed.src, ns, 'vm', { annotations: { [ANNOTATIONS.failAt]: 'Synchronizing' } });
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm' }));
    const wm = await waitForPhase(bed.src, ns, 'mig', 'Failed');
    assert.equal(wm.status?.failureReason, 'MigrationFailed');
    assert.match(wm.status?.failureMessage ?? '', /injected failure/);
    assert.equal(findCondition(wm.status?.conditions, 'Stalled')?.status, 'True');
    await waitForEvent(bed.src, ns, 'mig', 'MigrationFailed');
    assert.deepEqual(await leftovers(bed, ns, ns, wm.metadata.uid!), []);
    await assertSourceIntact(bed, ns, 'vm');
  });
});
