// Batch compression off the event loop, on one worker thread that keeps a zstd context per level.
//
// Why not Node's async zstdCompress (libuv's thread pool)? Each call builds a stream and a fresh
// zstd context and gathers the output in 16 KiB chunks, one main-thread callback and one buffer
// each. Measured on a recorded memwriter stream in 512 KiB batches at zstd-1: 0.48 CPU-s per
// 130 MB that way, 0.25 with a kept context (half of the sender's compression cost). The batches
// live in shared memory (the sender's pooled buffers), so nothing is copied to or from the worker
// and a batch is never lost: if the worker fails, its batches are still there to go stored.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { zstdBound } from '../codec/index.ts';
import type { CompressReply, CompressRequest } from './zstd-worker.ts';

/** The compressed frame (a view of a pooled shared buffer; hand it back with `release`), or
 *  undefined when the worker could not compress the batch. */
export type CompressDone = (frame: Buffer | undefined, release: () => void) => void;

/** Output buffers kept for reuse: one per batch being compressed or written. */
const OUT_POOL_KEEP = 8;

export class ZstdWorkerPool {
  private worker: Worker | undefined;
  /** The worker failed, or the pool was closed: no worker is started again. */
  private failed = false;
  private nextId = 1;
  private readonly waiting = new Map<number, { out: Buffer; done: CompressDone }>();
  private readonly outPool: Buffer[] = [];
  /** The worker's thread CPU time, as of its last reply. */
  cpuSeconds = 0;

  /** False once the worker failed (or the pool was closed): the caller compresses some other way. */
  get usable(): boolean {
    return !this.failed;
  }

  /** A buffer the worker can read: the caller's pooled batch buffers come from here. */
  static sharedBuffer(size: number): Buffer {
    return Buffer.from(new SharedArrayBuffer(size));
  }

  /**
   * Compresses `ops` (a view at offset 0 of a buffer from sharedBuffer, unchanged until `done`
   * runs) at `level`. `done` runs on the event loop, in submission order.
   */
  compress(ops: Buffer, level: number, done: CompressDone): void {
    const w = this.ensureWorker();
    const out = this.takeOut(ops.length);
    if (!w || !(ops.buffer instanceof SharedArrayBuffer) || ops.byteOffset !== 0) {
      done(undefined, () => this.giveOut(out));
      return;
    }
    const id = this.nextId++;
    this.waiting.set(id, { out, done });
    const req: CompressRequest = { id, level, ops: ops.buffer, opsLen: ops.length, out: out.buffer as SharedArrayBuffer };
    w.postMessage(req);
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failed = true;
    this.failAll();
    await w?.terminate();
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker || this.failed) return this.worker;
    // The worker is this module's sibling, .ts when run from source, .js in the built image.
    const ext = path.extname(fileURLToPath(import.meta.url));
    const w = new Worker(new URL(`./zstd-worker${ext}`, import.meta.url));
    w.unref();
    w.on('message', (r: CompressReply) => {
      this.cpuSeconds = r.cpuMicros / 1e6;
      const job = this.waiting.get(r.id);
      if (!job) return;
      this.waiting.delete(r.id);
      const release = (): void => this.giveOut(job.out);
      job.done(r.outLen >= 0 ? job.out.subarray(0, r.outLen) : undefined, release);
    });
    const fail = (): void => {
      this.failed = true;
      this.worker = undefined;
      this.failAll();
    };
    w.on('error', fail);
    w.on('exit', () => { if (this.worker === w) fail(); });
    this.worker = w;
    return w;
  }

  /** Batches the worker will never answer go back uncompressed (their ops are intact). */
  private failAll(): void {
    const jobs = [...this.waiting.values()];
    this.waiting.clear();
    for (const j of jobs) j.done(undefined, () => this.giveOut(j.out));
  }

  private takeOut(opsLen: number): Buffer {
    const need = zstdBound(opsLen);
    const spare = this.outPool.pop();
    return spare && spare.length >= need ? spare : ZstdWorkerPool.sharedBuffer(Math.max(need, zstdBound(576 << 10)));
  }

  private giveOut(buf: Buffer): void {
    if (this.outPool.length < OUT_POOL_KEEP) this.outPool.push(buf);
  }
}
