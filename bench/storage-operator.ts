// The operator-driven ways of `npm run bench:storage`, on the emulated WAN (wanem + WireGuard, the
// e2e pre-copy bed, test/e2e/precopy-bed.ts): the same VM (a claim-backed disk, the guest's disk
// writer rewriting a region during the migration) migrated by a WanMigration three ways:
//
//   kubevirt         storage.mode KubeVirt, relay.enabled false: KubeVirt's own disk mirror and
//                    memory stream straight across the WAN (the gateway intercepts no flow)
//   kubevirt+relay   storage.mode KubeVirt through the relay pair (dedup, deltas, zstd)
//   precopy          storage.mode CloudNetPreCopy: the operator's agents pre-copy the disk, the
//                    target seeds the receiver relay, then KubeVirt's final mirror and the memory
//                    go through the relay
//
// Reported per way: time from the WanMigration's creation to Succeeded, WAN bytes (both
// directions, at wanem), the final disk stream's WAN bytes (the relay's disk session), the bench
// process's and wanem's CPU seconds, and whether the target disk equals the source's outside the
// region the guest keeps rewriting on the target after the switch-over.
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Res } from '../src/api/resources.ts';
import type { KubeObject } from '../src/kube/rest.ts';
import type { WanMigration } from '../src/api/wanmigration.ts';
import { processCpuSeconds } from '../test/env/wan.ts';
import { getWM, wanMigration } from '../test/standin/harness.ts';
import { waitFor } from '../test/helpers/poll.ts';
import { createClaimVM, diskSession, startPrecopyBed, type PrecopyBed } from '../test/e2e/precopy-bed.ts';

const MiB = 1 << 20;

export interface OperatorWayResult {
  way: string;
  seconds: number;
  wanBytes: number;
  finalDiskStreamWanBytes?: number;
  precopyWanBytes?: number;
  benchCpuS: number;
  wanemCpuS: number;
  identical: boolean;
}

export interface OperatorBenchOptions {
  diskMiB: number;
  rateBps: number;
  rttMs: number;
  writerBlocks: number;
  writerMbps: number;
}

function diskContent(mib: number): Buffer {
  const b = Buffer.alloc(mib * MiB);
  const q = Math.floor(mib / 4) * MiB;
  crypto.randomFillSync(b, q, q); // a quarter random, a quarter text, half never written
  for (let off = 2 * q; off < 3 * q; off += 64) b.write(`block ${(off / 4096) | 0} of a file system, some text `.padEnd(64, '.'), off);
  return b;
}

async function wanTotal(bed: PrecopyBed): Promise<number> {
  const s = await bed.sites.stats();
  return s.ab.txBytes + s.ba.txBytes;
}

async function oneWay(bed: PrecopyBed, o: OperatorBenchOptions, way: 'kubevirt' | 'kubevirt+relay' | 'precopy'): Promise<OperatorWayResult> {
  const ns = 'bench';
  const vm = `vm-${way.replace(/\W/g, '')}`;
  const relay = way !== 'kubevirt';
  const sourceImage = await createClaimVM(bed, ns, vm, {
    diskMiB: o.diskMiB, content: diskContent(o.diskMiB), memoryMiB: 128,
    workload: { name: 'diskwriter', params: { blocks: o.writerBlocks, mbps: o.writerMbps } },
  });
  await waitFor(async () => (await bed.src.tryGet<KubeObject & { status?: { phase?: string } }>(Res.vmi, ns, vm))?.status?.phase === 'Running', { what: 'source VMI Running', timeoutMs: 180_000, intervalMs: 250 });
  await new Promise((r) => setTimeout(r, 3000)); // the writer is under way
  const sessionsBefore = Math.max(0, ...bed.relaySessions().map((s) => s.id));
  const wan0 = await wanTotal(bed);
  const cpu0 = { bench: processCpuSeconds(process.pid), wanem: bed.sites.wanemCpuSeconds() };
  const t0 = performance.now();
  await bed.src.create(Res.wanMigration, wanMigration(ns, `${vm}-mig`, {
    vmName: vm, relay: { enabled: relay }, ...(way === 'precopy' ? { storage: { mode: 'CloudNetPreCopy' } } : {}),
  }));
  const wm = await waitFor(async () => {
    const w = await getWM(bed.src, ns, `${vm}-mig`);
    if (w?.status?.phase === 'Failed' || w?.status?.phase === 'Aborted') throw new Error(`${way}: ${w.status.failureReason}: ${w.status.failureMessage}`);
    return w?.status?.phase === 'Succeeded' ? w : undefined;
  }, { what: `${vm} migrated`, timeoutMs: 1_200_000, intervalMs: 250 }) as WanMigration;
  const seconds = (performance.now() - t0) / 1000;
  const wanBytes = (await wanTotal(bed)) - wan0;
  let finalDisk: number | undefined;
  if (relay) {
    finalDisk = (await diskSession(bed, wm.status!.migrationID!, sessionsBefore)).wireBytes;
  }
  // The guest keeps writing on the target: compare the source disk (stopped) with the target's at
  // the switch-over, which the stand-in's mirror made identical; here, what the target holds now
  // can only differ in the writer's region after the switch-over, so the rest is compared.
  await waitFor(async () => !bed.driver.guest({ cluster: 'site-a', namespace: ns, name: vm }), { what: 'source QEMU stopped', timeoutMs: 60_000, intervalMs: 250 });
  const targetImage = bed.driver.diskFiles({ cluster: 'site-b', namespace: ns, name: vm })[0];
  const identical = sameOutside(sourceImage, targetImage, o.writerBlocks * 4096);
  return {
    way: way === 'kubevirt' ? 'KubeVirt disk migration (plain)' : way === 'kubevirt+relay' ? 'KubeVirt disk migration through the relay' : 'CloudNet pre-copy (operator-driven) + seeded final mirror',
    seconds, wanBytes, ...(finalDisk !== undefined ? { finalDiskStreamWanBytes: finalDisk } : {}),
    ...(way === 'precopy' && finalDisk !== undefined ? { precopyWanBytes: Math.max(0, wanBytes - finalDisk) } : {}),
    benchCpuS: processCpuSeconds(process.pid) - cpu0.bench, wanemCpuS: bed.sites.wanemCpuSeconds() - cpu0.wanem, identical,
  };
}

/** Both images are equal outside their first `skip` bytes (the region the guest keeps writing). */
function sameOutside(a: string, b: string, skip: number): boolean {
  const x = readFileSync(a);
  const y = readFileSync(b);
  return x.length === y.length && x.subarray(skip).equals(y.subarray(skip));
}

export async function runOperatorWays(o: OperatorBenchOptions, log: (s: string) => void): Promise<OperatorWayResult[]> {
  const bed = await startPrecopyBed({ rateBps: o.rateBps, rttMs: o.rttMs, log });
  try {
    const rows: OperatorWayResult[] = [];
    for (const way of ['kubevirt', 'kubevirt+relay', 'precopy'] as const) {
      log(`operator-driven way: ${way}`);
      rows.push(await oneWay(bed, o, way));
    }
    return rows;
  } finally {
    await bed.stop();
  }
}
