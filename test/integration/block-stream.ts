// Records a real QEMU 7.2 migration stream that carries a disk with block migration (capability
// `block`, the "block" savevm section, as the KubeVirt stand-in sends disks), for the relay
// codec's tests: a small guest that dirties both memory and its raw virtio disk, migrated into a
// file through exec: with a bandwidth cap so that pre-copy needs several rounds.
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { WorkloadSpec } from '../../src/qemu/image.ts';
import { migrateToFile, type MigrationResult } from '../../src/qemu/migrate.ts';
import type { GuestLab } from '../env/qemu.ts';

export interface BlockStreamOptions {
  memoryMiB?: number;
  diskMiB?: number;
  /** diskwriter's pace (MB/s) and memwriter's dirty rate (MB/s). */
  diskMbps?: number;
  dirtyMbps?: number;
  /** QEMU's max-bandwidth, MiB/s: low enough for several pre-copy rounds. */
  bandwidthMiB?: number;
  warmupMs?: number;
}

export interface BlockStream {
  path: string;
  result: MigrationResult & { fileBytes: number };
}

/** Boots a guest with a raw disk in `lab`, lets it write, migrates it with `block: true` into a file. */
export async function recordBlockStream(lab: GuestLab, name: string, o: BlockStreamOptions = {}): Promise<BlockStream> {
  const diskMiB = o.diskMiB ?? 8;
  const disk = join(lab.dir, `${name}.img`);
  writeFileSync(disk, '');
  truncateSync(disk, diskMiB << 20);
  // diskwriter covers half the disk with 4 KiB blocks, so the rest stays zero (ZERO_BLOCK records).
  const blocks = (diskMiB << 20) / 4096 / 2;
  const workload: WorkloadSpec = {
    name: ['memwriter', 'diskwriter'],
    params: { 'wss-mb': 16, 'dirty-mbps': o.dirtyMbps ?? 4, mix: 'zero:20,dup:20,random:20,text:40', blocks, mbps: o.diskMbps ?? 2 },
  };
  // QEMU 7.2's block migration (the system QEMU): QEMU 9.1 removed it, whatever CLOUDNET_QEMU_ROOT says.
  const guest = await lab.start({ name, workload, memoryMiB: o.memoryMiB ?? 128, disks: [{ path: disk, format: 'raw' }], qemuBinary: 'qemu-system-x86_64' });
  await guest.serial.waitFor(/MW READY/, 60_000);
  await guest.serial.waitFor(/DISK \d+ /, 60_000);
  await delay(o.warmupMs ?? 500);
  const path = join(lab.dir, `${name}.qemu`);
  const result = await migrateToFile(guest.qmp, path, {
    capabilities: { block: true },
    parameters: { 'max-bandwidth': (o.bandwidthMiB ?? 32) << 20, 'downtime-limit': 300 },
  });
  await guest.stop(2000);
  if (result.status !== 'completed') throw new Error(`block migration ${result.status}: ${result.error ?? ''}`);
  return { path, result };
}
