// End to end, storage.mode CloudNetPreCopy (issue 13): a real QEMU guest whose disk is a claim,
// migrated by the operator across the emulated WAN. The operator launches the storage agents (run
// by the node stand-ins as processes in the sites' node namespaces), the guest writes to its disk
// while they copy, the link is cut once during the copy, the copy converges, the agents stop and
// seed the receiver relay, then KubeVirt's (the stand-in's) memory migration with its final disk
// mirror runs through the relay, and the target runs the VM. Then the same disk again with
// storage.mode KubeVirt, for the WAN bytes of the final disk stream without pre-copy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import type { WanMigration } from '../../src/api/wanmigration.ts';
import { callAgent } from '../../src/storage/http.ts';
import { credentialsFromSecret, names } from '../../src/storage/launch/objects.ts';
import { POD } from '../../src/storage/launch/launcher.ts';
import type { SourceStatus } from '../../src/storage/status.ts';
import { sha256File } from '../../src/storage/volume.ts';
import { guestBin } from '../env/qemu.ts';
import { eventsFor, getWM, OPERATOR_NS, wanMigration } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';
import { createClaimVM, diskSession, startPrecopyBed, type PrecopyBed } from './precopy-bed.ts';

const MiB = 1 << 20;
const DISK_MIB = 128;
const BLOCKS = 1024; // the guest rewrites the first 4 MiB, two passes
const NS = 'precopy';
const RATE = Number(process.env.E2E_RATE_MBPS ?? 100) * 1e6;

/** A used disk: random and text-like regions, then never-written space. */
function diskContent(): Buffer {
  const b = Buffer.alloc(DISK_MIB * MiB);
  crypto.randomFillSync(b, 8 * MiB, 32 * MiB);
  for (let off = 40 * MiB; off < 72 * MiB; off += 64) b.write(`block ${(off / 4096) | 0} of a file system, some text `.padEnd(64, '.'), off);
  return b;
}

async function phaseOf(bed: PrecopyBed, name: string): Promise<WanMigration | undefined> {
  return getWM(bed.src, NS, name);
}

async function waitPhase(bed: PrecopyBed, name: string, phases: string[], timeoutMs: number): Promise<WanMigration> {
  return waitFor(async () => {
    const wm = await phaseOf(bed, name);
    if (wm?.status?.phase && ['Failed', 'Aborted'].includes(wm.status.phase) && !phases.includes(wm.status.phase)) {
      throw new Error(`${name} ${wm.status.phase}: ${wm.status.failureReason}: ${wm.status.failureMessage}`);
    }
    return wm?.status?.phase && phases.includes(wm.status.phase) ? wm : undefined;
  }, { what: `${name} in ${phases.join('|')}`, timeoutMs: timeoutMs, intervalMs: 250 });
}

const maxSessionId = (bed: PrecopyBed) => Math.max(0, ...bed.relaySessions().map((s) => s.id));

/** The source agent's status, asked as the operator (its credentials from the operator's Secret). */
async function sourceAgentStatus(bed: PrecopyBed, wm: WanMigration): Promise<SourceStatus | undefined> {
  const secret = await bed.src.tryGet<KubeObject & { data?: Record<string, string> }>(Res.secret, OPERATOR_NS, names.operatorSecret(wm));
  const creds = credentialsFromSecret(secret?.data, 'operator');
  const pod = (await bed.src.list<KubeObject & { status?: { phase?: string; podIP?: string } }>(POD, NS)).items.find((p) => p.status?.phase === 'Running' && p.status.podIP);
  if (!creds || !pod) return undefined;
  return JSON.parse((await callAgent(creds, 'source', `https://${pod.status!.podIP}:9471`, '/status', { timeoutMs: 3000 })).toString()) as SourceStatus;
}

describe('storage pre-copy end to end', { timeout: 1_500_000 }, () => {
  let bed: PrecopyBed;
  before(async () => { bed = await startPrecopyBed({ rateBps: RATE, rttMs: 50, log: (l) => console.log(`[bed] ${l}`) }); }, { timeout: 300_000 });
  after(async () => { await bed?.stop(); });

  let precopyFinalWire = 0;

  test('CloudNetPreCopy: pre-copy (link cut, guest writing), migration, cutover; byte-identical disk, final stream ≤ 5% of the disk', async () => {
    const vm = 'pc-vm';
    const content = diskContent();
    const sourceImage = await createClaimVM(bed, NS, vm, { diskMiB: DISK_MIB, content, workload: { name: 'diskwriter', params: { blocks: BLOCKS, passes: 2, mbps: 1 } } });
    await waitFor(async () => (await bed.src.tryGet<KubeObject & { status?: { phase?: string } }>(Res.vmi, NS, vm))?.status?.phase === 'Running', { what: 'source VMI Running', timeoutMs: 180_000, intervalMs: 250 });
    const source = bed.driver.guest({ cluster: 'site-a', namespace: NS, name: vm })!;
    await bed.src.create(Res.wanMigration, wanMigration(NS, `${vm}-mig`, { vmName: vm, storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true }, cutover: { mode: 'Manual' } }));
    const started = await waitPhase(bed, `${vm}-mig`, ['SyncingStorage', 'PreparingTarget', 'AwaitingCutover'], 120_000);

    // Follow the source agent; cut the WAN for 20 s once it has sent a few MiB. TCP alone would sit
    // it out; the agent notices the stall (15 s without a reply), reconnects and resumes.
    let last: SourceStatus | undefined;
    let cut = false;
    let polling = true;
    const follow = (async () => {
      while (polling) {
        last = (await sourceAgentStatus(bed, started).catch(() => undefined)) ?? last;
        if (!cut && last && last.bytesSent > 2 * MiB && last.phase === 'Copying') {
          cut = true;
          await bed.sites.setLink({ down: true });
          await new Promise((r) => setTimeout(r, 20_000));
          await bed.sites.setLink({ down: false });
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    let waiting: WanMigration;
    try {
      waiting = await waitPhase(bed, `${vm}-mig`, ['AwaitingCutover'], 600_000);
    } finally {
      polling = false;
      await follow;
      await bed.sites.setLink({ down: false });
    }
    assert.ok(cut, 'the link was cut during the pre-copy');
    assert.ok(last, 'the source agent reported');
    console.log(`[e2e] pre-copy: passes ${JSON.stringify(last!.passes.map((p) => [p.pass, p.dirtyBytes, p.wireBytes]))}, sent ${last!.bytesSent} B, over the WAN ${last!.bytesOverWan} B, link ${JSON.stringify(last!.link)}`);
    assert.ok(last!.link.reconnects >= 1, 'the agent reconnected after the cut');
    assert.ok(last!.link.resentBytes < 32 * MiB, `resumed, not restarted: re-sent ${last!.link.resentBytes} B`);
    assert.ok(last!.bytesSent < content.length, `${last!.bytesSent} B sent for a ${content.length} B disk: the copy restarted`);
    assert.equal(findCondition(waiting.status?.conditions, 'StorageSynced')?.reason, 'Converged');
    assert.ok(waiting.status?.deadlines?.storageSeconds, 'deadlines in status');
    // The agents are gone before the receiver VM exists.
    assert.deepEqual((await bed.dst.list(POD, NS)).items.map((p) => p.metadata?.name), []);

    // The guest finishes its writes; then the memory migration and KubeVirt's final disk mirror.
    await source.serial.waitFor(/DISK DONE/, 300_000);
    const sessionsBefore = maxSessionId(bed);
    await bed.src.patchMerge(Res.wanMigration, NS, `${vm}-mig`, { spec: { cutover: { approved: true } } });
    const wm = await waitPhase(bed, `${vm}-mig`, ['Succeeded'], 600_000);

    // The phases' Events in time order (one reconcile may pass several phases within a millisecond:
    // ties go in the order the planner steps through them).
    const PHASES = ['SyncingStorage', 'PreparingTarget', 'AwaitingCutover', 'MigratingMemory', 'CuttingOver', 'Succeeded'];
    const evs = (await eventsFor(bed.src, NS, `${vm}-mig`)).filter((e) => PHASES.includes(e.reason ?? ''))
      .map((e) => ({ reason: e.reason!, at: Date.parse(String((e as { eventTime?: string }).eventTime ?? e.metadata?.creationTimestamp ?? '')) }))
      .sort((x, y) => x.at - y.at || PHASES.indexOf(x.reason) - PHASES.indexOf(y.reason));
    assert.deepEqual([...new Set(evs.map((e) => e.reason))], PHASES);
    const rec = bed.driver.migrations.get(wm.status!.migrationID!)!;
    const disk = await diskSession(bed, wm.status!.migrationID!, sessionsBefore);
    assert.ok(disk, `the final disk stream crossed the relay (${JSON.stringify(rec.path)}): ${bed.relayDiagnostics()}`);
    precopyFinalWire = disk!.wireBytes ?? 0;
    console.log(`[e2e] final disk stream with pre-copy: ${disk!.bytesIn} B in, ${precopyFinalWire} B over the WAN (${(100 * precopyFinalWire / content.length).toFixed(2)}% of the ${DISK_MIB} MiB disk); mirror ${JSON.stringify(rec.diskMirror)}`);
    assert.ok(precopyFinalWire <= 0.05 * content.length, `final disk stream ${precopyFinalWire} B > 5% of the disk`);

    // Byte-identical: the source's disk (its QEMU stopped) and the target's claim; the guest's writes kept.
    await waitFor(async () => !bed.driver.guest({ cluster: 'site-a', namespace: NS, name: vm }), { what: 'source QEMU stopped', timeoutMs: 60_000, intervalMs: 250 });
    const targetImage = bed.nodeB.volumes.diskImage(NS, `${vm}-disk0`)!;
    assert.deepEqual(bed.driver.diskFiles({ cluster: 'site-b', namespace: NS, name: vm }), [targetImage], 'the receiver ran on the pre-copied claim');
    assert.equal(await sha256File(targetImage), await sha256File(sourceImage), 'target disk != source disk');
    assert.match(execFileSync(guestBin('diskwriter'), ['--verify', '--dev', targetImage, '--blocks', String(BLOCKS)], { encoding: 'utf8' }), /DISK VERIFY ok/);
    assert.ok(await bed.dst.tryGet(Res.pvc, NS, `${vm}-disk0`), 'the target claim stays');
    assert.deepEqual((await bed.src.list(POD, NS)).items.map((p) => p.metadata?.name), [], 'no agent Pod left on the source');
  });

  test('the same disk with storage.mode KubeVirt: the final disk stream without pre-copy', async () => {
    const vm = 'kv-vm';
    const content = diskContent();
    await createClaimVM(bed, NS, vm, { diskMiB: DISK_MIB, content, workload: { name: 'idle' } });
    await waitFor(async () => (await bed.src.tryGet<KubeObject & { status?: { phase?: string } }>(Res.vmi, NS, vm))?.status?.phase === 'Running', { what: 'source VMI Running', timeoutMs: 180_000, intervalMs: 250 });
    const sessionsBefore = maxSessionId(bed);
    await bed.src.create(Res.wanMigration, wanMigration(NS, `${vm}-mig`, { vmName: vm, relay: { enabled: true } }));
    const wm = await waitPhase(bed, `${vm}-mig`, ['Succeeded'], 600_000);
    const disk = await diskSession(bed, wm.status!.migrationID!, sessionsBefore);
    assert.ok(disk, 'the disk stream crossed the relay');
    console.log(`[e2e] final disk stream without pre-copy: ${disk!.bytesIn} B in, ${disk!.wireBytes} B over the WAN (${(100 * (disk!.wireBytes ?? 0) / content.length).toFixed(1)}%); with pre-copy it was ${precopyFinalWire} B`);
    if (precopyFinalWire) assert.ok(precopyFinalWire < (disk!.wireBytes ?? 0) / 4, 'pre-copy and seeds must cut the final stream');
  });
});
