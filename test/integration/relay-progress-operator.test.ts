// The production wiring: `cloudnet operator`'s controller set (defaultControllerFactories) with
// CLOUDNET_RELAY_API naming a real sender relay's registration API, two real API servers and the
// KubeVirt stand-in. The migration is held in MigratingMemory (its VMIMs hang at Running): the
// operator registers exactly the flows the receiver VMI's migrationState publishes (target node
// address and migration ports) with the migration's relay settings; a QEMU-format stream on that
// flow (this test stands in for the gateway's redirect) shows in WanMigration.status.progress, with
// the total from the VM's guest memory, and RelayOptimizing=True. With KubeVirt's migration TLS on
// (its default), the flows are registered opaque and RelayOptimizing=False, MigrationTLSEnabled.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Condition } from '../../src/api/meta.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { defaultControllerFactories, RELAY_API_ENV, RELAY_API_TOKEN_FILE_ENV } from '../../src/operator/controllers.ts';
import { startOperator, type RunningOperator } from '../../src/operator/main.ts';
import { syntheticQemuStream } from '../../src/relay/tools/index.ts';
import { useClusters } from '../env/index.ts';
import {
  createVM, ensure, eventsFor, getWM, operatorConfig, setupBed, waitForCondition, waitForPhase, wanMigration, type Bed,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { startSink, type Sink } from './relay-helpers.ts';
import { openStream, startRelayPair, type RelayPair } from './relay-progress-helpers.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed | undefined;
let op: RunningOperator | undefined;
let relays: RelayPair | undefined;
const sinks: Sink[] = [];
const sockets: net.Socket[] = [];

async function setMigrationTLS(c: KubeClient, on: boolean): Promise<void> {
  await c.patchMerge(Res.kubevirt, 'kubevirt', 'kubevirt', { spec: { configuration: { migrations: { disableTLS: !on } } } });
}

describe('operator with CLOUDNET_RELAY_API', { timeout: 240_000 }, () => {
  // Registered ahead of useClusters' own `after`, so the operator and relays stop before the clusters.
  after(async () => {
    for (const s of sockets) s.destroy();
    await op?.stop();
    await bed?.stop();
    await relays?.stop();
    for (const s of sinks) await s.close();
  });
  useClusters(2, {
    setup: async (clusters) => {
      relays = await startRelayPair();
      const tokenFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'relay-token-')), 'token');
      fs.writeFileSync(tokenFile, relays.token, { mode: 0o600 });
      bed = await setupBed(clusters);
      op = await startOperator(operatorConfig(bed.a.kubeConfig), defaultControllerFactories({ [RELAY_API_ENV]: `site-b=${relays.apiUrl}`, [RELAY_API_TOKEN_FILE_ENV]: tokenFile }));
    },
  });

  async function startHeld(ns: string): Promise<string> {
    const { src, dst } = bed!;
    await ensure(dst, Res.namespace, { metadata: { name: ns } });
    await createVM(src, ns, 'vm', { annotations: { [ANNOTATIONS.hangAt]: 'Running' } }); // 512Mi guest
    // The Site first (a migration created before it is Ready waits out the default 15 s retry).
    await waitFor(async () => {
      const site = await src.tryGet<KubeObject & { status?: { conditions?: Condition[] } }>(Res.site, undefined, 'site-b');
      return findCondition(site?.status?.conditions, 'Ready')?.status === 'True';
    }, { what: 'Site site-b Ready', timeoutMs: 60_000, intervalMs: 200 });
    await src.create(Res.wanMigration, wanMigration(ns, 'mig', { vmName: 'vm', relay: { enabled: true, cacheSizeMiB: 16 } }));
    const wm = await waitForPhase(src, ns, 'mig', 'MigratingMemory', 60_000);
    return wm.status!.migrationID!;
  }

  test('the receiver\'s migration flows are registered, and status.progress comes from their session', async () => {
    const { src, dst } = bed!;
    for (const c of [src, dst]) await setMigrationTLS(c, false);
    const ns = 'relay-progress';
    const id = await startHeld(ns);
    // What the operator registered: exactly the target VMI's migrationState, with the spec's settings.
    const reg = await waitFor(async () => (await relays!.api.registrations()).find((r) => r.owner.migrationID === id), { what: 'flows registered', timeoutMs: 30_000, intervalMs: 100 });
    const vmi = await dst.get<KubeObject & { status?: { migrationState?: { targetNodeAddress?: string; targetDirectMigrationNodePorts?: Record<string, number> } } }>(Res.vmi, ns, 'vm');
    const ms = vmi.status?.migrationState;
    assert.deepEqual(reg.flows.map((f) => f.destination).sort(), Object.keys(ms?.targetDirectMigrationNodePorts ?? {}).map((p) => `${ms?.targetNodeAddress}:${p}`).sort());
    assert.deepEqual(reg.owner, { namespace: ns, name: 'mig', migrationID: id });
    assert.deepEqual(reg.settings, { compression: 'Zstd', dedup: true, deltaPages: true, cacheSizeMiB: 16, opaque: false });
    await waitForCondition(src, ns, 'mig', 'RelayOptimizing', 'True', 'FlowsIntercepted', 30_000);

    // What virt-handler's migration proxy would send on the memory flow, held open half-way; the
    // target's proxy port is played by a sink.
    const memory = Object.entries(ms!.targetDirectMigrationNodePorts!).find(([, v]) => v === 49152)![0];
    sinks.push(await startSink(1, Number(memory)));
    const stream = syntheticQemuStream({ seed: 9, pages: 1500, rounds: 3 });
    const s = await openStream(await relays!.flowPort(`${ms!.targetNodeAddress}:${memory}`));
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
    await s.write(stream.subarray(half));
    s.end();
    const done = await waitFor(async () => {
      const p = (await getWM(src, ns, 'mig'))?.status?.progress;
      return p?.bytesSent === stream.length ? p : undefined;
    }, { what: 'the whole stream in status.progress', timeoutMs: 30_000, intervalMs: 200 });
    assert.ok((done.bytesOverWan ?? 0) < stream.length / 2, `WAN ${done.bytesOverWan} B for ${stream.length} B`);
    assert.equal(done.rounds, 3);
    const reasons = (await eventsFor(src, ns, 'mig')).map((e) => e.reason);
    assert.ok(!reasons.includes('RelayUnavailable'), `a relay is configured: ${reasons.join(',')}`);

    // Roll the held migration back: its flows are released.
    await src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
    await waitForPhase(src, ns, 'mig', 'Aborted', 60_000);
    await waitFor(async () => !(await relays!.api.registrations()).some((r) => r.owner.migrationID === id), { what: 'flows released', timeoutMs: 20_000, intervalMs: 200 });
  });

  test('with KubeVirt\'s migration TLS on, flows are carried opaquely and RelayOptimizing says why', async () => {
    const { src, dst } = bed!;
    for (const c of [src, dst]) await setMigrationTLS(c, true);
    const ns = 'relay-tls';
    const id = await startHeld(ns);
    const wm = await waitForCondition(src, ns, 'mig', 'RelayOptimizing', 'False', 'MigrationTLSEnabled', 30_000);
    assert.match(findCondition(wm.status?.conditions, 'RelayOptimizing')!.message, /spec\.configuration\.migrations\.disableTLS/);
    const reg = (await relays!.api.registrations()).find((r) => r.owner.migrationID === id);
    assert.equal(reg?.settings.opaque, true, 'the relay is told the stream is encrypted');
    await src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { abort: true } });
    await waitForPhase(src, ns, 'mig', 'Aborted', 60_000);
  });

  test('a bad setting stops the operator at start', () => {
    assert.throws(() => defaultControllerFactories({ [RELAY_API_ENV]: 'http://relay-send:9410', [RELAY_API_TOKEN_FILE_ENV]: '/dev/null' }), /must be https:\/\/ or unix:\/\//);
    assert.throws(() => defaultControllerFactories({ [RELAY_API_ENV]: 'https://relay-send:9443' }), /CLOUDNET_RELAY_API_TOKEN_FILE/);
  });
});
