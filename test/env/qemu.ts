// QEMU guests for tests: a "lab" owns a temp dir and every guest started in it, and cleans both
// up even when a test fails (stop() in the test, plus the exit hooks of netns.ts and
// src/qemu/process.ts). liveMigrate() boots a source, waits for its workload, starts a
// destination (each possibly in its own network namespace, e.g. the two node namespaces of
// wan.ts), migrates over TCP and checks from the serial heartbeats that the guest kept running.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { cacheDir, type WorkloadSpec } from '../../src/qemu/image.ts';
import { migrate, type MigrationResult, type MigrationTuning } from '../../src/qemu/migrate.ts';
import { startGuest, type GuestOptions, type QemuGuest } from '../../src/qemu/process.ts';
import type { Heartbeat } from '../../src/qemu/serial.ts';
import { startStreamTee } from '../../src/qemu/stream-tee.ts';
import { freePort } from '../helpers/ports.ts';
import { onExit } from '../helpers/exit.ts';
import { requireTool } from './netns.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Fails (never skips) when QEMU or the guest image is missing; builds the image if needed. */
export function requireQemu(): void {
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  requireTool('qemu-img', 'qemu-utils');
  requireTool('setpriv', 'util-linux');
  const guestDir = join(cacheDir(), 'guest');
  if (!existsSync(join(guestDir, 'initrd.cpio.gz')) || !existsSync(join(guestDir, 'vmlinuz'))) {
    execFileSync('bash', [join(repoRoot, 'hack/build-guest.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
}

/** Path of a static workload binary built by hack/build-guest.sh, for host-side reference runs. */
export function guestBin(name: 'sqlload' | 'diskwriter' | 'memwriter' | 'heartbeat'): string {
  return join(cacheDir(), 'guest', 'bin', name);
}

export interface GuestLab {
  readonly dir: string;
  readonly guests: readonly QemuGuest[];
  start(o: Omit<GuestOptions, 'workDir'>): Promise<QemuGuest>;
  /** Stops every guest and removes the temp dir. Idempotent. */
  destroy(): Promise<void>;
}

export function createGuestLab(prefix = 'cloudnet-qemu-'): GuestLab {
  requireQemu();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const guests: QemuGuest[] = [];
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  let destroyed = false;
  return {
    dir,
    guests,
    async start(o) {
      const g = await startGuest({ ...o, workDir: dir });
      guests.push(g);
      return g;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.all(guests.map((g) => g.stop(2000)));
      rmSync(dir, { recursive: true, force: true });
      unregister();
    },
  };
}

export interface LiveMigrationOptions extends MigrationTuning {
  workload: WorkloadSpec;
  memoryMiB?: number;
  disks?: GuestOptions['disks'];
  /** Serial line that means the workload is in its steady state (default: the guest's READY line). */
  ready?: RegExp;
  /** Let the workload run this long after `ready` before migrating. */
  warmupMs?: number;
  sourceNetns?: string;
  destinationNetns?: string;
  /** Address the destination listens on, inside its namespace (default 127.0.0.1, or 0.0.0.0 in a namespace). */
  listenHost?: string;
  /** Address the source connects to (default 127.0.0.1). */
  connectHost?: string;
  /** Default: a free loopback port, or 49152 (KubeVirt's migration port) inside namespaces. */
  port?: number;
  /** Route the stream through a counting TCP tee to measure bytes on the wire (default: on when
   *  both ends are in the host's namespace; across namespaces use the WAN emulator's counters). */
  countWire?: boolean;
  /** Serial observation on the destination after completion (default 1500 ms). */
  settleMs?: number;
  timeoutMs?: number;
  name?: string;
}

export interface LiveMigrationReport {
  result: MigrationResult;
  sourceBootMs: number;
  /** Source->destination bytes through the counting tee, when countWire was on. */
  wireBytes?: number;
  source: QemuGuest;
  destination: QemuGuest;
  lastSourceHeartbeat?: Heartbeat;
  destinationHeartbeats: Heartbeat[];
  /** Host-side gap between the source's last and the destination's first heartbeat (ms). */
  heartbeatPauseMs: number;
  /** Heartbeat counters strictly increased across source and destination. */
  heartbeatsMonotonic: boolean;
}

export async function liveMigrate(lab: GuestLab, o: LiveMigrationOptions): Promise<LiveMigrationReport> {
  const name = o.name ?? 'vm';
  const inNamespaces = Boolean(o.sourceNetns || o.destinationNetns);
  const port = o.port ?? (inNamespaces ? 49152 : await freePort());
  const common = { workload: o.workload, memoryMiB: o.memoryMiB ?? 256, disks: o.disks };
  const t0 = performance.now();
  const source = await lab.start({ ...common, name: `${name}-src`, netns: o.sourceNetns });
  const sourceBootMs = performance.now() - t0;
  if (o.ready) await source.serial.waitFor(o.ready, 60_000);
  if (o.warmupMs) await delay(o.warmupMs);
  const destination = await lab.start({ ...common, name: `${name}-dst`, netns: o.destinationNetns, incoming: true });
  const listen = o.listenHost ?? (o.destinationNetns ? '0.0.0.0' : '127.0.0.1');
  const connectHost = o.connectHost ?? '127.0.0.1';
  const tee = (o.countWire ?? !inNamespaces) ? await startStreamTee({ targetHost: connectHost, targetPort: port }) : undefined;
  let result: MigrationResult;
  try {
    result = await migrate({
      source: source.qmp,
      destination: destination.qmp,
      incomingUri: `tcp:${listen}:${port}`,
      uri: tee ? `tcp:127.0.0.1:${tee.port}` : `tcp:${connectHost}:${port}`,
      capabilities: o.capabilities,
      parameters: o.parameters,
      timeoutMs: o.timeoutMs,
    });
  } finally {
    // QEMU closes the migration socket once done; give the tee a moment to hand over the last
    // bytes before cutting whatever is left (a failed or hung migration).
    if (tee) {
      await Promise.race([tee.drained(), delay(5000)]);
      await tee.close();
    }
  }
  if (result.status === 'completed') {
    await destination.serial.waitFor(/HB \d+/, 10_000);
    await delay(o.settleMs ?? 1500);
  }
  const srcHb = source.serial.heartbeats();
  const dstHb = destination.serial.heartbeats();
  const all = [...srcHb, ...dstHb];
  const last = srcHb.at(-1);
  return {
    result,
    sourceBootMs,
    wireBytes: tee?.forwarded.toDestination,
    source,
    destination,
    lastSourceHeartbeat: last,
    destinationHeartbeats: dstHb,
    heartbeatPauseMs: last && dstHb[0] ? dstHb[0].at - last.at : Number.NaN,
    heartbeatsMonotonic: all.every((h, i) => i === 0 || h.n > all[i - 1].n),
  };
}
