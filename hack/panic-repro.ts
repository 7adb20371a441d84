// Loop that measures how often a TCG guest panics shortly after a live migration (e.g.
// "profile_tick ... Kernel panic - not syncing: Attempted to kill the idle task!").
// Each round boots a 128 MiB guest running memwriter, migrates it over loopback TCP, then
// watches the destination's serial console for ~8 s: a panic/oops line or heartbeats that stop
// count as a failure. Rounds run PAR at a time, which also adds the host load that widens the
// timer races. Mitigations are tried through the environment:
//   RUNS=20 PAR=2 EXTRA_APPEND="nohz=off" EXTRA_QEMU="-machine hpet=off" \
//     node_modules/.bin/node hack/panic-repro.ts
// Other knobs: BW_MBPS (max-bandwidth, default 10), DISK=1 (memwriter+sqlload+diskwriter with a
// virtio disk and the block capability), WARMUP_MS (guest age before migrating), WATCH_MS.
// Every round also compares both ends' RAM at switch-over (src/qemu/memory-check.ts); REPAIR=1
// restores lost pages first, as the KubeVirt stand-in does.
// Finding (2026-11-25): the panics are lost guest writes. Comparing RAM at switch-over showed 2-18
// pages that differ between the paused source and the loaded target in plain and XBZRLE
// migrations across the demo's WAN (many pre-copy rounds), none through loopback in 72 short
// runs: QEMU 7.2's dirty-bitmap sync fast path does not reset the TCG TLB's dirty state, so writes
// through stale TLB entries (kernel pages are global, they stay cached) go unrecorded. Fixed
// upstream in QEMU 9.0 (commit 03bfc2188f); KVM is not affected. Same loop, 8 rounds each, 10 MB/s,
// guests aged 3 s: QEMU 7.2 lost pages in 2 of 8 migrations, QEMU 10.0.2 (bookworm-backports,
// extracted with dpkg-deb -x, QEMU=<dir>) in 0 of 8.
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { kernelCmdline, type WorkloadSpec } from '../src/qemu/image.ts';
import { checkGuestRam, type MemoryCheck } from '../src/qemu/memory-check.ts';
import { migrate } from '../src/qemu/migrate.ts';
import { freePort } from '../test/helpers/ports.ts';
import { createGuestLab, type GuestLab } from '../test/env/qemu.ts';

const runs = Number(process.env.RUNS ?? 20);
const parallel = Number(process.env.PAR ?? 2);
const watchMs = Number(process.env.WATCH_MS ?? 8000);
// A WAN-like bandwidth cap: several pre-copy rounds, as in the demo and e2e runs that panicked.
// The panics seen in CI/demo came 25-90 s into the guest's life: WARMUP_MS lets it age first.
const warmupMs = Number(process.env.WARMUP_MS ?? 1000);
const bandwidthMBps = Number(process.env.BW_MBPS ?? 10);
const extraAppend = process.env.EXTRA_APPEND ?? '';
const extraQemu = (process.env.EXTRA_QEMU ?? '').split(/\s+/).filter(Boolean);
// QEMU=<dir>: a QEMU tree extracted from .debs (usr/bin/qemu-system-x86_64, usr/share/qemu), e.g.
// bookworm-backports' 10.0, to compare against the system's 7.2.
const qemuRoot = process.env.QEMU;
const qemuBinary = qemuRoot ? join(qemuRoot, 'usr/bin/qemu-system-x86_64') : undefined;
if (qemuRoot) extraQemu.push('-L', join(qemuRoot, 'usr/share/qemu'));
// DISK=1: the integration test's mix (memwriter + sqlload + diskwriter on a virtio disk, migrated
// with the block capability like the stand-in driver does), closer to the demo runs that panicked.
const withDisk = process.env.DISK === '1';
// REPAIR=1: restore lost pages at switch-over (what the stand-in does) and count only panics.
const repairRam = process.env.REPAIR === '1';
const blocks = 1024;
const workload: WorkloadSpec = withDisk
  ? { name: ['memwriter', 'sqlload', 'diskwriter'], params: { 'wss-mb': 32, 'dirty-mbps': 8, blocks, mbps: 1 } }
  : { name: 'memwriter', params: { 'wss-mb': 32, 'dirty-mbps': 8 } };

function diskFile(lab: GuestLab, name: string): { path: string; format: 'raw' }[] {
  if (!withDisk) return [];
  const path = join(lab.dir, `${name}.img`);
  writeFileSync(path, '');
  truncateSync(path, blocks * 4096 * 2);
  return [{ path, format: 'raw' }];
}
/** tmpfs for guest RAM: a shared mapping on disk would add writeback I/O. Removed by guest.stop(). */
const ramFile = (name: string): string => join('/dev/shm', `cloudnet-repro-${process.pid}-${name}.ram`);
const PANIC = /Kernel panic|Oops|Fatal exception|BUG:|general protection|RIP:/;

interface RoundResult {
  ok: boolean;
  why: string;
}

async function round(lab: GuestLab, i: number): Promise<RoundResult> {
  const common = {
    memoryMiB: 128,
    append: kernelCmdline(workload, extraAppend),
    extraArgs: extraQemu,
    ...(qemuBinary ? { qemuBinary } : {}),
  };
  const src = await lab.start({ ...common, name: `r${i}-src`, disks: diskFile(lab, `r${i}-src`), ramFile: ramFile(`r${i}-src`) });
  await delay(warmupMs);
  const dst = await lab.start({ ...common, name: `r${i}-dst`, incoming: true, disks: diskFile(lab, `r${i}-dst`), ramFile: ramFile(`r${i}-dst`) });
  let check: MemoryCheck | undefined;
  const port = await freePort();
  try {
    const result = await migrate({
      source: src.qmp,
      destination: dst.qmp,
      incomingUri: `tcp:127.0.0.1:${port}`,
      uri: `tcp:127.0.0.1:${port}`,
      capabilities: withDisk ? { block: true } : {},
      parameters: { 'max-bandwidth': bandwidthMBps * 1024 * 1024 },
      timeoutMs: 120_000,
      atSwitchover: async () => {
        check = await checkGuestRam(src.ramFile!, dst.ramFile!, { repair: repairRam });
      },
    });
    if (result.status !== 'completed') return { ok: false, why: `migration ${result.status} ${result.error ?? ''}` };
    if (check?.mismatchCount && !repairRam) return { ok: false, why: `lost pages: ${check.mismatchCount}, e.g. ${check.mismatched.slice(0, 8).join(',')}` };
    const from = dst.serial.count;
    const t0 = performance.now();
    await delay(watchMs);
    const lines = dst.serial.lines.map((l) => l.text);
    const bad = lines.find((l) => PANIC.test(l));
    if (bad) return { ok: false, why: `panic: ${bad.trim()}` };
    const hbs = dst.serial.heartbeats(from).filter((h) => h.at > t0 + watchMs / 2);
    if (hbs.length === 0) return { ok: false, why: 'no heartbeat in the last half of the watch window' };
    return { ok: true, why: `${dst.serial.heartbeats().length} dst heartbeats` };
  } finally {
    await Promise.all([src.stop(1000), dst.stop(1000)]);
  }
}

async function main(): Promise<void> {
  const lab = createGuestLab('cloudnet-panic-');
  let next = 0;
  let panics = 0;
  let done = 0;
  const failures: string[] = [];
  try {
    const worker = async () => {
      while (next < runs) {
        const i = next++;
        let r: RoundResult;
        try {
          r = await round(lab, i);
        } catch (err) {
          r = { ok: false, why: `error: ${(err as Error).message.split('\n')[0]}` };
        }
        done++;
        if (!r.ok) {
          if (r.why.startsWith('panic') || r.why.startsWith('no heartbeat')) panics++;
          failures.push(`#${i}: ${r.why}`);
        }
        process.stdout.write(`round ${i}: ${r.ok ? 'ok' : 'FAIL'} ${r.why}\n`);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    await lab.destroy();
  }
  process.stdout.write(
    `RESULT disk=${withDisk} bw=${bandwidthMBps}MB/s append="${extraAppend}" qemu="${extraQemu.join(' ')}" panics=${panics}/${done}\n${failures.join('\n')}\n`,
  );
}

await main();
process.exit(0);
