// Batch compression off the event loop, on worker threads that keep a zstd context per level.
//
// Why not Node's async zstdCompress (libuv's thread pool)? Each call builds a stream and a fresh
// zstd context and gathers the output in 16 KiB chunks, one main-thread callback and one buffer
// each. Measured on a recorded memwriter stream in 512 KiB batches at zstd-1: 0.48 CPU-s per
// 130 MB that way, 0.25 with a kept context (half of the sender's compression cost). The batches
// live in shared memory (the sender's pooled buffers), so nothing is copied to or from the worker
// and a batch is never lost: if the worker fails, its batches are still there to go stored.
import os from 'node:os';
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

/** Compression threads by default: the cores left over by the event loop, at most 4 (one thread
 *  compresses ~500 MB/s of ops at zstd-1 here, ~4 Gbit/s). */
export function defaultCompressionThreads(): number {
  return Math.max(1, Math.min(4, os.availableParallelism() - 1));
}

interface Thread {
  worker: Worker;
  pending: number;
  cpuMicros: number;
}

export class ZstdWorkerPool {
  private threads: Thread[] = [];
  private readonly size: number;
  /** A worker failed, or the pool was closed: no worker is started again. */
  private failed = false;
  private nextId = 1;
  private readonly waiting = new Map<number, { out: Buffer; done: CompressDone; thread: Thread }>();
  private readonly outPool: Buffer[] = [];

  constructor(threads = defaultCompressionThreads()) {
    this.size = Math.max(1, threads);
  }

  /** Compression threads (started by warm(), or else by the first batch to compress). */
  get threadCount(): number {
    return this.threads.length;
  }

  /** The compression threads' CPU time, as of their last replies. */
  get cpuSeconds(): number {
    return this.threads.reduce((n, t) => n + t.cpuMicros, 0) / 1e6;
  }

  /** False once a worker failed (or the pool was closed): the caller compresses some other way. */
  get usable(): boolean {
    return !this.failed;
  }

  /** A buffer the worker can read: the caller's pooled batch buffers come from here. */
  static sharedBuffer(size: number): Buffer {
    return Buffer.from(new SharedArrayBuffer(size));
  }

  /**
   * Compresses `ops` (a view at offset 0 of a buffer from sharedBuffer, unchanged until `done`
   * runs) at `level`, on the thread with the fewest batches pending. `done` runs on the event
   * loop; with one thread in submission order, with more possibly not (the sender's pipeline
   * puts frames on the link in its own order).
   */
  compress(ops: Buffer, level: number, done: CompressDone): void {
    const thread = this.pickThread();
    const out = this.takeOut(ops.length);
    if (!thread || !(ops.buffer instanceof SharedArrayBuffer) || ops.byteOffset !== 0) {
      done(undefined, () => this.giveOut(out));
      return;
    }
    const id = this.nextId++;
    this.waiting.set(id, { out, done, thread });
    thread.pending++;
    const req: CompressRequest = { id, level, ops: ops.buffer, opsLen: ops.length, out: out.buffer as SharedArrayBuffer };
    thread.worker.postMessage(req);
  }

  /**
   * Starts the threads now and has each compress a small sample. A thread takes ~75 ms of CPU to
   * start on this machine (Node's worker bootstrap, this module's load, the first zstd context),
   * two to three times that while QEMU loads the cores; started on the first batch, it held the
   * first migration back by that long, since every batch waits for the one before it (a sender's
   * CPU trace showed ~300 ms of work before its receiver saw a byte).
   */
  async warm(): Promise<void> {
    const sample = ZstdWorkerPool.sharedBuffer(64 << 10);
    for (let i = 0; i < sample.length; i++) sample[i] = (i >> 6) & 0x3f;
    await Promise.all(Array.from({ length: this.size }, () => new Promise<void>((resolve) => {
      this.compress(sample, 1, (_frame, release) => { release(); resolve(); });
    })));
  }

  async close(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    this.failed = true;
    this.failAll();
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pickThread(): Thread | undefined {
    if (this.failed) return undefined;
    if (!this.threads.length) this.threads = Array.from({ length: this.size }, () => this.startThread());
    let best = this.threads[0];
    for (const t of this.threads) if (t.pending < best.pending) best = t;
    return best;
  }

  private startThread(): Thread {
    // The worker is this module's sibling, .ts when run from source, .js in the built image.
    const ext = path.extname(fileURLToPath(import.meta.url));
    const w = new Worker(new URL(`./zstd-worker${ext}`, import.meta.url));
    const thread: Thread = { worker: w, pending: 0, cpuMicros: 0 };
    w.unref();
    w.on('message', (r: CompressReply) => {
      thread.cpuMicros = r.cpuMicros;
      const job = this.waiting.get(r.id);
      if (!job) return;
      this.waiting.delete(r.id);
      thread.pending--;
      const release = (): void => this.giveOut(job.out);
      job.done(r.outLen >= 0 ? job.out.subarray(0, r.outLen) : undefined, release);
    });
    // One failed thread retires the pool: its batches, and every other pending one, come back
    // uncompressed, and the caller compresses some other way from then on.
    const fail = (): void => {
      if (this.failed) return;
      void this.close();
    };
    w.on('error', fail);
    w.on('exit', fail);
    return thread;
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
