// Long names and refused creates on real API servers (issue 14): a WanMigration with the longest
// legal name (253 characters) migrates, everything derived from its name stays valid; and a create
// the target's API server refuses is in the status, with the server's message, while the phase's
// deadline still runs and rolls back.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import {
  assertSourceIntact, createVM, ensure, eventsFor, leftovers, useOperatorBed, waitForCondition, waitForEvent, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
useOperatorBed((b) => { bed = b; });

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** The longest legal WanMigration name: a DNS subdomain of 253 characters. */
const LONGEST = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');

describe('names', () => {
  test('a WanMigration named with 253 characters migrates; labels and VMIM names derived from it are valid', async () => {
    assert.equal(LONGEST.length, 253);
    const ns = 'long-name';
    await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
    await createVM(bed.src, ns, 'vm');
    await bed.src.create(Res.wanMigration, wanMigration(ns, LONGEST, { vmName: 'vm' }));
    const wm = await waitForPhase(bed.src, ns, LONGEST, 'Succeeded', 60_000);
    const owned = [
      ...(await bed.dst.list(Res.vm, ns)).items, ...(await bed.dst.list(Res.secret, ns)).items, ...(await bed.dst.list(Res.configMap, ns)).items,
      ...(await bed.dst.list(Res.dataVolume, ns)).items, ...(await bed.dst.list(Res.vmim, ns)).items, ...(await bed.src.list(Res.vmim, ns)).items,
    ].filter((o) => o.metadata?.labels?.['cloudnet.io/migration-uid'] === wm.metadata.uid);
    assert.equal(owned.length, 6, owned.map((o) => `${o.kind} ${o.metadata?.name}`).join(', '));
    for (const o of owned) {
      for (const [k, v] of Object.entries(o.metadata?.labels ?? {})) assert.ok(v.length <= 63 && LABEL_VALUE.test(v), `${o.kind} ${o.metadata?.name}: ${k}=${v}`);
      assert.equal(o.metadata?.annotations?.['cloudnet.io/migration-name'], LONGEST, 'the full name, in an annotation');
    }
    // KubeVirt copies a VMIM's name into a label value (kubevirt.io/migration-name).
    for (const name of [wm.status?.vmims?.source, wm.status?.vmims?.target]) assert.ok(name && name.length <= 63 && LABEL_VALUE.test(name), name);
    const reasons = (await eventsFor(bed.src, ns, LONGEST)).map((e) => e.reason);
    for (const r of ['ConnectingLink', 'Succeeded']) assert.ok(reasons.includes(r), `Event ${r} recorded for the long name (${reasons})`);
  });
});

describe('a create the target refuses', () => {
  test('TargetObjectCreateFailed with the API server\'s message, before the retry; the deadline still fires and rolls back', async () => {
    const ns = 'quota';
    await ensure(bed.dst, Res.namespace, { metadata: { name: ns } });
    // No ConfigMap may be created there: the ResourceQuota admission plugin refuses with 403. It
    // enforces what the quota's status says, which kube-controller-manager (not run here) would
    // fill in, so the test writes it; then wait until admission sees it (its quota cache).
    const rq = { group: '', version: 'v1', plural: 'resourcequotas', kind: 'ResourceQuota' };
    await ensure(bed.dst, rq, { metadata: { name: 'no-configmaps', namespace: ns }, spec: { hard: { configmaps: '0' } } } as KubeObject);
    await bed.dst.patchStatus(rq, ns, 'no-configmaps', { hard: { configmaps: '0' }, used: { configmaps: '0' } });
    await waitFor(async () => {
      try {
        await bed.dst.create(Res.configMap, { metadata: { name: 'probe', namespace: ns } });
        await bed.dst.delete(Res.configMap, ns, 'probe');
        return false;
      } catch (e) {
        return /exceeded quota/.test(String(e));
      }
    }, { what: 'the quota refuses ConfigMaps' });
    await createVM(bed.src, ns, 'vm');
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', timeouts: { targetPreparedSeconds: 6 } }));
    const wm = await waitForCondition(bed.src, ns, 'mig', 'TargetPrepared', 'False', 'TargetObjectCreateFailed');
    const c = findCondition(wm.status?.conditions, 'TargetPrepared');
    assert.match(c?.message ?? '', /^cannot create ConfigMap quota\/vm-config on site-b: HTTP 403 Forbidden: configmaps "vm-config" is forbidden: exceeded quota: no-configmaps/);
    assert.equal(wm.status?.phase, 'PreparingTarget', 'the phase was written, so its deadline runs');
    assert.equal(findCondition(wm.status?.conditions, 'Stalled')?.reason, 'TargetObjectCreateFailed');
    assert.equal((await waitForEvent(bed.src, ns, 'mig', 'TargetObjectCreateFailed')).type, 'Warning');
    const failed = await waitForPhase(bed.src, ns, 'mig', 'Failed', 30_000);
    assert.equal(failed.status?.failureReason, 'DeadlineExceeded');
    assert.match(failed.status?.failureMessage ?? '', /PreparingTarget exceeded its deadline of 6s \(TargetObjectCreateFailed: cannot create ConfigMap/);
    assert.match(findCondition(failed.status?.conditions, 'Reconciling')?.message ?? '', /source VM quota\/vm is running/);
    assert.deepEqual(await leftovers(bed, ns, ns, failed.metadata.uid!), [], 'the Secret copy made before the refusal is gone');
    await assertSourceIntact(bed, ns, 'vm');
  });
});
