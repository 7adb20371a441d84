// The change source and the synchronous-mode switch for a disk of a running QEMU, over QMP:
//  - dirty bitmaps: one per pass, rotated atomically in a transaction (add the next, disable the
//    current), so every guest write lands in exactly one pass's bitmap;
//  - the disabled bitmap is read through a read-only NBD export of the disk with the
//    qemu:dirty-bitmap:<name> metadata context (QEMU's own NBD client: `qemu-img map` with
//    x-dirty-bitmap reports dirty ranges as "data": false);
//  - synchronous mode: blockdev-mirror with sync=none and copy-mode=write-blocking to an NBD
//    node served by the source agent, so each guest write completes only after the target
//    confirmed it (DRBD protocol C);
//  - query-blockstats, for the guest's write latency before and during synchronous mode.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { QmpClient } from '../qemu/qmp.ts';
import { logger } from '../util/log.ts';
import { mergeExtents, type Extent } from './extents.ts';

const log = logger('storage-qemu');
const execFileP = promisify(execFile);

interface BlockInfo {
  device: string;
  qdev?: string;
  inserted?: { 'node-name': string; file: string; drv: string; image?: { 'virtual-size': number; filename: string } };
}

interface BlockStats {
  device: string;
  'node-name'?: string;
  stats: { wr_operations: number; wr_total_time_ns: number; wr_bytes: number };
}

export interface WriteStats {
  ops: number;
  totalNs: number;
  bytes: number;
}

export const BITMAP_PREFIX = 'cloudnet-pass-';
const MIRROR_JOB = 'cloudnet-sync-mirror';
const MIRROR_NODE = 'cloudnet-sync-target';

export class QemuDisk {
  readonly qmp: QmpClient;
  readonly device: string;
  readonly node: string;
  readonly file: string;
  readonly format: string;
  readonly size: number;
  private readonly nbdSocket: string;
  private epoch = 0;
  private exportSerial = 0;
  private nbdStarted = false;
  mirroring = false;

  private constructor(qmp: QmpClient, info: BlockInfo, nbdSocket: string) {
    const ins = info.inserted!;
    this.qmp = qmp;
    this.device = info.device;
    this.node = ins['node-name'];
    this.file = ins.image?.filename ?? ins.file;
    this.format = ins.drv;
    this.size = ins.image?.['virtual-size'] ?? 0;
    this.nbdSocket = nbdSocket;
  }

  /** Finds the drive `device` (its -drive id) of the guest. `nbdSocket`: where QEMU exports bitmaps. */
  static async open(qmp: QmpClient, device: string, nbdSocket: string): Promise<QemuDisk> {
    const blocks = (await qmp.executeUntyped('query-block')) as BlockInfo[];
    const info = blocks.find((b) => b.device === device || b.qdev === device || b.inserted?.['node-name'] === device);
    if (!info?.inserted) throw new Error(`QEMU has no drive ${device} (drives: ${blocks.map((b) => b.device).join(', ')})`);
    return new QemuDisk(qmp, info, nbdSocket);
  }

  private bitmap(n: number): string {
    return `${BITMAP_PREFIX}${n}`;
  }

  /** Starts tracking guest writes (before the first pass reads anything). */
  async startTracking(): Promise<void> {
    await this.removeStaleBitmaps();
    this.epoch = 1;
    await this.qmp.executeUntyped('block-dirty-bitmap-add', { node: this.node, name: this.bitmap(1), granularity: 65536 });
  }

  /** Bitmaps left by an earlier agent run of this guest (their epochs are unknown to us). */
  private async removeStaleBitmaps(): Promise<void> {
    const nodes = (await this.qmp.executeUntyped('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; 'dirty-bitmaps'?: Array<{ name: string }> }>;
    for (const n of nodes) {
      if (n['node-name'] !== this.node) continue;
      for (const b of n['dirty-bitmaps'] ?? []) {
        if (b.name.startsWith(BITMAP_PREFIX)) await this.qmp.executeUntyped('block-dirty-bitmap-remove', { node: this.node, name: b.name });
      }
    }
  }

  /**
   * Ends the current epoch and returns the byte ranges the guest wrote during it; the next epoch
   * begins in the same transaction, so no write is lost between the two.
   */
  async collect(): Promise<Extent[]> {
    const cur = this.bitmap(this.epoch);
    const next = this.bitmap(this.epoch + 1);
    await this.qmp.executeUntyped('transaction', {
      actions: [
        { type: 'block-dirty-bitmap-add', data: { node: this.node, name: next, granularity: 65536 } },
        { type: 'block-dirty-bitmap-disable', data: { node: this.node, name: cur } },
      ],
    });
    this.epoch++;
    try {
      return await this.readBitmap(cur);
    } finally {
      await this.qmp.executeUntyped('block-dirty-bitmap-remove', { node: this.node, name: cur }).catch(() => undefined);
    }
  }

  private async ensureNbdServer(): Promise<void> {
    if (this.nbdStarted) return;
    await this.qmp.executeUntyped('nbd-server-start', { addr: { type: 'unix', data: { path: this.nbdSocket } } });
    this.nbdStarted = true;
  }

  private async readBitmap(name: string): Promise<Extent[]> {
    await this.ensureNbdServer();
    const id = `cloudnet-bitmap-${++this.exportSerial}`;
    await this.qmp.executeUntyped('block-export-add', { type: 'nbd', id, 'node-name': this.node, name: id, writable: false, bitmaps: [name] });
    try {
      const { stdout } = await execFileP('qemu-img', ['map', '--output=json', '--image-opts',
        `driver=nbd,server.type=unix,server.path=${this.nbdSocket},export=${id},x-dirty-bitmap=qemu:dirty-bitmap:${name}`], { maxBuffer: 256 << 20 });
      const map = JSON.parse(stdout) as Array<{ start: number; length: number; data: boolean }>;
      return mergeExtents(map.filter((e) => !e.data).map((e) => ({ offset: e.start, length: e.length })));
    } finally {
      await this.qmp.executeUntyped('block-export-del', { id }).catch(() => undefined);
      await this.waitExportGone(id);
    }
  }

  private async waitExportGone(id: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const exports = (await this.qmp.executeUntyped('query-block-exports')) as Array<{ id: string }>;
      if (!exports.some((e) => e.id === id)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts the write-blocking mirror into the NBD export at `socket` and waits for it to be ready. */
  async startMirror(socket: string, exportName: string): Promise<void> {
    await this.qmp.executeUntyped('blockdev-add', { driver: 'nbd', 'node-name': MIRROR_NODE, server: { type: 'unix', path: socket }, export: exportName });
    const ready = this.qmp.waitForEvent('BLOCK_JOB_READY', 60_000, (e) => e.data?.device === MIRROR_JOB);
    ready.catch(() => undefined);
    try {
      await this.qmp.executeUntyped('blockdev-mirror', {
        'job-id': MIRROR_JOB, device: this.node, target: MIRROR_NODE, sync: 'none', 'copy-mode': 'write-blocking',
        // If the agent itself dies, the guest's writes (already on the source) must not fail.
        'on-target-error': 'ignore', 'auto-finalize': true, 'auto-dismiss': true,
      });
    } catch (err) {
      await this.qmp.executeUntyped('blockdev-del', { 'node-name': MIRROR_NODE }).catch(() => undefined);
      throw err;
    }
    this.mirroring = true;
    const jobs = (await this.qmp.executeUntyped('query-block-jobs')) as Array<{ device: string; ready: boolean }>;
    if (!jobs.some((j) => j.device === MIRROR_JOB && j.ready)) await ready;
    log.info('write-blocking mirror ready', { device: this.device });
  }

  async mirrorReady(): Promise<boolean> {
    const jobs = (await this.qmp.executeUntyped('query-block-jobs')) as Array<{ device: string; ready: boolean; status: string }>;
    return jobs.some((j) => j.device === MIRROR_JOB && j.ready && j.status === 'ready');
  }

  /** Ends the mirror without switching the guest to it (a ready mirror cancels cleanly). */
  async stopMirror(): Promise<void> {
    if (!this.mirroring) return;
    const done = this.qmp.waitForEvent('BLOCK_JOB_COMPLETED', 30_000, (e) => e.data?.device === MIRROR_JOB)
      .catch(() => this.qmp.waitForEvent('BLOCK_JOB_CANCELLED', 1, () => true))
      .catch(() => undefined);
    try {
      await this.qmp.executeUntyped('block-job-cancel', { device: MIRROR_JOB, force: true });
      await done;
    } catch (err) {
      log.warn('block-job-cancel failed', { error: String(err) });
    }
    this.mirroring = false;
    await this.qmp.executeUntyped('blockdev-del', { 'node-name': MIRROR_NODE }).catch((err: unknown) => log.warn('blockdev-del failed', { error: String(err) }));
  }

  async writeStats(): Promise<WriteStats> {
    const all = (await this.qmp.executeUntyped('query-blockstats')) as BlockStats[];
    const s = all.find((b) => b.device === this.device || b['node-name'] === this.node);
    if (!s) throw new Error(`no block stats for ${this.device}`);
    return { ops: s.stats.wr_operations, totalNs: s.stats.wr_total_time_ns, bytes: s.stats.wr_bytes };
  }

  async runState(): Promise<string> {
    const st = (await this.qmp.executeUntyped('query-status')) as { status: string };
    return st.status;
  }

  /** Removes everything this agent added to QEMU (mirror, bitmaps, NBD server). Idempotent. */
  async cleanup(): Promise<void> {
    if (this.qmp.closed) return;
    await this.stopMirror();
    await this.removeStaleBitmaps().catch(() => undefined);
    if (this.nbdStarted) {
      await this.qmp.executeUntyped('nbd-server-stop').catch(() => undefined);
      this.nbdStarted = false;
    }
  }
}
