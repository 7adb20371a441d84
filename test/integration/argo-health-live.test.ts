// The Argo CD health check (config/argocd/health.lua, run by lua5.4 in Argo CD's sandbox) on the
// statuses the operator really writes, on two real API servers with the KubeVirt stand-in. Every
// distinct status a migration passes through is evaluated, so the mapping is checked along whole
// runs, not only on hand-written samples: Manual cutover (Progressing → Suspended → Healthy), a
// hung VMIM (Degraded with the deadline), an abort (Suspended) and a Site (Healthy).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Res } from '../../src/api/resources.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { createVM, getWM, useOperatorBed, waitForPhase, wanMigration, type Bed } from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { argoHealth, type Health, type Json } from '../../hack/argo-health.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;

useOperatorBed((b) => { bed = b; });

interface Seen extends Health { phase: string }

/** Polls a WanMigration and keeps the Argo CD health of every distinct status it goes through. */
function trackHealth(ns: string, name: string): { seen: Seen[]; stop: () => Promise<void> } {
  const seen: Seen[] = [];
  let running = true;
  const loop = (async () => {
    let last = '';
    while (running) {
      const wm = await getWM(bed.src, ns, name).catch(() => undefined);
      const key = JSON.stringify(wm?.status ?? null);
      if (wm && key !== last) {
        last = key;
        const h = argoHealth(wm as unknown as Json);
        const prev = seen[seen.length - 1];
        if (!prev || prev.status !== h.status || prev.message !== h.message) seen.push({ ...h, phase: wm.status?.phase ?? '' });
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return { seen, stop: async () => { running = false; await loop; } };
}

const healthOf = (o: unknown) => argoHealth(o as Json);

/** A running source VM (a VM whose VMI is not running yet is, rightly, a Stalled bad input). */
async function runningVM(ns: string, name: string, annotations: Record<string, string> = {}): Promise<void> {
  await createVM(bed.src, ns, name, { annotations });
  await waitFor(async () => (await bed.src.tryGet<KubeObject & { status?: { phase?: string } }>(Res.vmi, ns, name))?.status?.phase === 'Running', { what: `source VMI ${ns}/${name} Running` });
  await bed.dst.create(Res.namespace, { metadata: { name: ns } }).catch(() => undefined);
}

describe('Argo CD health on live operator statuses', () => {
  test('Site: Healthy once its cluster answers', async () => {
    const site = await waitFor(async () => {
      const s = await bed.src.tryGet<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(Res.site, undefined, 'site-b');
      return s?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? s : undefined;
    }, { what: 'Site site-b Ready' });
    assert.equal(healthOf(site).status, 'Healthy');
  });

  test('Manual cutover: Progressing, Suspended while awaiting approval, Healthy after it', async () => {
    const ns = 'argo-manual';
    await runningVM(ns, 'vm-m');
    const obj = wanMigration(ns, 'mig', { vmName: 'vm-m', cutover: { mode: 'Manual' } });
    assert.deepEqual(healthOf(obj), { status: 'Progressing', message: 'Waiting for the operator to report status' });
    const track = trackHealth(ns, 'mig');
    try {
      await bed.src.create(Res.wanMigration, obj);
      const waiting = await waitForPhase(bed.src, ns, 'mig', 'AwaitingCutover', 30_000);
      const suspended = healthOf(waiting);
      assert.equal(suspended.status, 'Suspended', suspended.message);
      assert.match(suspended.message, /approv/i);
      // The tracker polls: let it see the wait before it ends (on a loaded machine one GET can outlast it).
      await waitFor(async () => track.seen.some((s) => s.status === 'Suspended'), { what: 'the tracker to see Suspended' });
      await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { cutover: { approved: true } } });
      const done = await waitForPhase(bed.src, ns, 'mig', 'Succeeded', 30_000);
      assert.equal(healthOf(done).status, 'Healthy');
      await waitFor(async () => track.seen.at(-1)?.phase === 'Succeeded', { what: 'the tracker to see Succeeded' });
    } finally {
      await track.stop();
    }
    const statuses = track.seen.map((s) => s.status);
    assert.equal(statuses[0], 'Progressing', JSON.stringify(track.seen));
    assert.ok(statuses.includes('Suspended'), JSON.stringify(track.seen));
    assert.equal(statuses.at(-1), 'Healthy');
    assert.ok(!statuses.includes('Degraded'), `never Degraded on a good run: ${JSON.stringify(track.seen)}`);
    // Suspended only while waiting for the cutover; Healthy only at the end.
    for (const s of track.seen) {
      if (s.status === 'Suspended') assert.equal(s.phase, 'AwaitingCutover');
      if (s.status === 'Healthy') assert.equal(s.phase, 'Succeeded');
    }
  });

  test('a hung VMIM: Progressing while it waits, Degraded with the deadline reason after', async () => {
    const ns = 'argo-hung';
    await runningVM(ns, 'vm-h', { [ANNOTATIONS.hangAt]: 'WaitingForSync' });
    const track = trackHealth(ns, 'mig');
    try {
      await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-h', timeouts: { memorySeconds: 2 } }));
      const failed = await waitForPhase(bed.src, ns, 'mig', 'Failed', 30_000);
      const h = healthOf(failed);
      assert.equal(h.status, 'Degraded');
      assert.match(h.message, /^DeadlineExceeded: /);
      await waitFor(async () => track.seen.at(-1)?.phase === 'Failed', { what: 'the tracker to see Failed' });
    } finally {
      await track.stop();
    }
    assert.ok(track.seen.some((s) => s.status === 'Progressing' && s.phase === 'MigratingMemory'), JSON.stringify(track.seen));
    assert.equal(track.seen.at(-1)?.status, 'Degraded');
  });

  test('a VM that is not running: Degraded (Stalled) at once, with the reason the operator gives', async () => {
    const ns = 'argo-stopped';
    await createVM(bed.src, ns, 'vm-s', { runStrategy: 'Halted' });
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-s' }));
    const h = await waitFor(async () => {
      const wm = await getWM(bed.src, ns, 'mig');
      const r = wm?.status ? healthOf(wm) : undefined;
      return r?.status === 'Degraded' ? r : undefined;
    }, { what: 'Degraded' });
    assert.match(h.message, /^VMNotRunning: /);
  });

  test('abort while awaiting cutover: Suspended, not Degraded', async () => {
    const ns = 'argo-abort';
    await runningVM(ns, 'vm-a');
    await bed.src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm-a', cutover: { mode: 'Manual' } }));
    await waitForPhase(bed.src, ns, 'mig', 'AwaitingCutover', 30_000);
    await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
    const aborted = await waitForPhase(bed.src, ns, 'mig', 'Aborted', 30_000);
    const h = healthOf(aborted);
    assert.equal(h.status, 'Suspended', h.message);
    assert.match(h.message, /^Aborted: /);
  });
});
