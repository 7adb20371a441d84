// The production wiring: `cloudnet operator`'s controller set (defaultControllerFactories) with
// CLOUDNET_RELAY_STATS_URL pointing at a real sender relay's /stats, two real API servers and the
// KubeVirt stand-in. The migration is held in MigratingMemory (its VMIMs hang at Running) while a
// QEMU-format stream goes through the relay; WanMigration.status.progress must show the relay's
// figures, with the total from the VM's guest memory. Without the setting: no reader, the warning.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Condition } from '../../src/api/meta.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { defaultControllerFactories, RELAY_STATS_URL_ENV } from '../../src/operator/controllers.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { useClusters } from '../env/index.ts';
import {
  createVM, ensure, eventsFor, getWM, operatorConfig, setupBed, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { startSink, type Sink } from './relay-helpers.ts';
import { openStream, startRelayPair, type RelayPair } from './relay-progress-helpers.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed | undefined;
let op: RunningOperator | undefined;
let relays: RelayPair | undefined;
let sink: Sink | undefined;
const sockets: net.Socket[] = [];

describe('operator with CLOUDNET_RELAY_STATS_URL', { timeout: 240_000 }, () => {
  // Registered ahead of useClusters' own `after`, so the operator and relays stop before the clusters.
  after(async () => {
    for (const s of sockets) s.destroy();
    await op?.stop();
    await bed?.stop();
    await relays?.stop();
    await sink?.close();
  });
  useClusters(2, {
    setup: async (clusters) => {
      sink = await startSink(1);
      relays = await startRelayPair(sink.port);
      bed = await setupBed(clusters);
      op = await startOperator(operatorConfig(bed.a.kubeConfig), defaultControllerFactories({ [RELAY_STATS_URL_ENV]: `site-b=${relays.statsUrl}` }));
    },
  });

  test('status.progress comes from the relay session carrying the migration', async () => {
    const { src, dst } = bed!;
    const ns = 'relay-progress';
    await ensure(dst, Res.namespace, { metadata: { name: ns } });
    await createVM(src, ns, 'vm', { annotations: { [ANNOTATIONS.hangAt]: 'Running' } }); // 512Mi guest
    // The Site first (a migration created before it is Ready waits out the default 15 s retry).
    await waitFor(async () => {
      const site = await src.tryGet<KubeObject & { status?: { conditions?: Condition[] } }>(Res.site, undefined, 'site-b');
      return findCondition(site?.status?.conditions, 'Ready')?.status === 'True';
    }, { what: 'Site site-b Ready', timeoutMs: 60_000, intervalMs: 200 });
    await src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', relay: { enabled: true } }));
    await waitForPhase(src, ns, 'mig', 'MigratingMemory', 60_000);

    // What virt-handler's migration proxy would send: a QEMU stream, here held open half-way.
    const stream = syntheticQemuStream({ seed: 9, pages: 1500, rounds: 3 });
    const s = await openStream(relays!.sendPort);
    sockets.push(s.socket);
    const half = Math.floor(stream.length / 2);
    await s.write(stream.subarray(0, half));
    const live = await waitFor(async () => {
      const p = (await getWM(src, ns, 'mig'))?.status?.progress;
      return p?.bytesOverWan && (p.bytesSent ?? 0) >= half ? p : undefined;
    }, { what: 'relay figures in status.progress', timeoutMs: 30_000, intervalMs: 200 });
    assert.equal(live.bytesTotal, 512 * 2 ** 20, 'the total is the VM\'s guest memory');
    assert.ok((live.rounds ?? 0) >= 1);
    assert.ok(live.reductionRatio !== undefined && live.reductionRatio > 0 && live.reductionRatio < 1, `ratio ${live.reductionRatio}`);
    assert.ok(live.etaSeconds !== undefined, 'an ETA from the relay');

    await s.write(stream.subarray(half));
    s.end();
    const done = await waitFor(async () => {
      const p = (await getWM(src, ns, 'mig'))?.status?.progress;
      return p?.bytesSent === stream.length ? p : undefined;
    }, { what: 'the whole stream in status.progress', timeoutMs: 30_000, intervalMs: 200 });
    assert.ok((done.bytesOverWan ?? 0) < stream.length / 2, `WAN ${done.bytesOverWan} B for ${stream.length} B`);
    assert.equal(done.rounds, 3);
    const reasons = (await eventsFor(src, ns, 'mig')).map((e) => e.reason);
    assert.ok(!reasons.includes('RelayUnavailable'), `a relay reader is configured: ${reasons.join(',')}`);

    // Leave nothing behind: roll the held migration back.
    await src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
    await waitForPhase(src, ns, 'mig', 'Aborted', 60_000);
  });

  test('a bad setting stops the operator at start', () => {
    assert.throws(() => defaultControllerFactories({ [RELAY_STATS_URL_ENV]: 'relay-send:9410' }), /must be http, https or file/);
  });
});
