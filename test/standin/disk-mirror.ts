// KubeVirt's (libvirt's) migration of non-shared disks, the successor of QEMU's in-stream block
// migration (capability `block`, removed in QEMU 9.1):
//  - the target QEMU (still `-incoming defer`) runs an NBD server on the disk migration port
//    (KubeVirt's 49153) and exports each disk writable under its drive id (exportDisks);
//  - the source QEMU mirrors each disk into its export (drive-mirror sync=full, mode=existing,
//    format=raw) until every job is ready, i.e. copied and following the guest's writes
//    synchronously enough to finish at once (DiskMirrors.start / waitReady);
//  - the RAM migration runs; once it completed (source paused, target not yet running) each ready
//    mirror is ended with block-job-cancel, which on a ready mirror completes it consistently
//    (DiskMirrors.complete), and the target's NBD server stops (stopExports) before the target runs;
//  - on failure or cancel the mirrors are force-cancelled on the source (cancel), which keeps running.
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { QmpClient, QmpEvent } from '../../src/qemu/qmp.ts';

export interface HostPort {
  host: string;
  port: number;
}

interface BlockInfo {
  device: string;
  inserted?: { 'node-name'?: string };
}

interface BlockJobInfo {
  device: string;
  len: number;
  offset: number;
  ready?: boolean;
  status?: string;
}

/** How a mirror job ended, from its QMP event. */
interface JobEnd {
  event: 'BLOCK_JOB_COMPLETED' | 'BLOCK_JOB_CANCELLED';
  error?: string;
  offset: number;
}

export interface MirrorFigures {
  /** ms from the first drive-mirror until every job was ready. */
  readyMs?: number;
  /** ms block-job-cancel took to complete the ready jobs (inside the switch-over pause). */
  completeMs?: number;
  /** Bytes the jobs copied (their final offsets: the first pass plus re-copied dirty blocks). */
  bytes?: number;
}

const jobId = (disk: string): string => `mirror-${disk}`;

/** Target side: an NBD server on `listen`, and each disk exported writable under its drive id. */
export async function exportDisks(target: QmpClient, listen: HostPort, disks: string[]): Promise<void> {
  await target.executeUntyped('nbd-server-start', { addr: { type: 'inet', data: { host: listen.host, port: String(listen.port) } } });
  // block-export-add wants the drive's node name (a -drive gets a generated one).
  const blocks = (await target.executeUntyped('query-block')) as BlockInfo[];
  for (const d of disks) {
    const node = blocks.find((b) => b.device === d)?.inserted?.['node-name'];
    if (!node) throw new Error(`target QEMU has no drive ${d} to export`);
    await target.executeUntyped('block-export-add', { type: 'nbd', id: `export-${d}`, 'node-name': node, name: d, writable: true });
  }
}

/** Target side: closes the exports and the NBD server (no client may write once the target runs). */
export async function stopExports(target: QmpClient): Promise<void> {
  await target.executeUntyped('nbd-server-stop');
}

/** Source side: one drive-mirror job per disk into the target's NBD exports. */
export class DiskMirrors {
  readonly figures: MirrorFigures = {};
  private readonly source: QmpClient;
  private readonly disks: string[];
  private readonly ended = new Map<string, JobEnd>();
  private readonly started = new Set<string>();
  private t0 = 0;
  private readonly onEvent = (e: QmpEvent): void => {
    if (e.event !== 'BLOCK_JOB_COMPLETED' && e.event !== 'BLOCK_JOB_CANCELLED') return;
    const device = String(e.data?.device ?? '');
    if (!this.started.has(device)) return;
    const error = typeof e.data?.error === 'string' ? e.data.error : undefined;
    this.ended.set(device, { event: e.event, error, offset: Number(e.data?.offset ?? 0) });
  };

  constructor(source: QmpClient, disks: string[]) {
    this.source = source;
    this.disks = disks;
  }

  /** Starts the mirrors into nbd://<connect>/<drive id>. */
  async start(connect: HostPort): Promise<void> {
    this.source.on('event', this.onEvent);
    this.t0 = performance.now();
    for (const d of this.disks) {
      await this.source.executeUntyped('drive-mirror', {
        'job-id': jobId(d), device: d, target: `nbd://${connect.host}:${connect.port}/${d}`, sync: 'full', mode: 'existing', format: 'raw',
      });
      this.started.add(jobId(d));
    }
  }

  private async jobs(): Promise<Map<string, BlockJobInfo>> {
    const list = (await this.source.executeUntyped('query-block-jobs')) as BlockJobInfo[];
    return new Map(list.filter((j) => this.started.has(j.device)).map((j) => [j.device, j]));
  }

  private endError(job: string): string {
    const end = this.ended.get(job);
    if (!end) return `mirror ${job} is gone`;
    return end.error ? `mirror ${job} failed: ${end.error}` : `mirror ${job} ended (${end.event})`;
  }

  /** Resolves once every job is ready; throws when one ends first, on abort and after timeoutMs. */
  async waitReady(signal: AbortSignal, timeoutMs: number): Promise<void> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const jobs = await this.jobs();
      for (const id of this.started) if (!jobs.has(id)) throw new Error(`disk ${this.endError(id)} before it was ready`);
      if ([...jobs.values()].every((j) => j.ready)) {
        this.figures.readyMs = Math.round(performance.now() - this.t0);
        return;
      }
      if (performance.now() - this.t0 > timeoutMs) throw new Error(`disk mirrors not ready within ${timeoutMs} ms: ${JSON.stringify([...jobs.values()])}`);
      await delay(100);
    }
  }

  /** With the source paused after the RAM migration: completes every ready mirror (block-job-cancel
   *  on a ready job finishes the copy, the target then holds exactly the source's disk). */
  async complete(timeoutMs = 60_000): Promise<void> {
    const t = performance.now();
    const jobs = await this.jobs();
    for (const id of this.started) {
      const j = jobs.get(id);
      if (!j) throw new Error(`disk ${this.endError(id)} during the memory migration`);
      if (!j.ready) throw new Error(`disk mirror ${id} is no longer ready (${j.status})`);
      await this.source.executeUntyped('block-job-cancel', { device: id });
    }
    for (;;) {
      const left = await this.jobs();
      if (!left.size) break;
      if (performance.now() - t > timeoutMs) throw new Error(`disk mirrors did not complete within ${timeoutMs} ms`);
      await delay(20);
    }
    // The jobs are gone once their end event was sent; the QMP socket delivers it first.
    let bytes = 0;
    for (const id of this.started) {
      const end = this.ended.get(id);
      if (!end || end.event !== 'BLOCK_JOB_COMPLETED' || end.error) throw new Error(`disk ${this.endError(id)} instead of completing`);
      bytes += end.offset;
    }
    this.figures.completeMs = Math.round(performance.now() - t);
    this.figures.bytes = bytes;
    this.started.clear();
    this.dispose();
  }

  /** Failure or cancel: force-cancels whatever still runs and waits (bounded) for it to go. */
  async cancel(timeoutMs = 10_000): Promise<void> {
    try {
      const jobs = await this.jobs();
      for (const id of jobs.keys()) await this.source.executeUntyped('block-job-cancel', { device: id, force: true }).catch(() => undefined);
      const t = performance.now();
      while ((await this.jobs()).size && performance.now() - t < timeoutMs) await delay(50);
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.source.off('event', this.onEvent);
  }
}
