// End-to-end stream check (`--hash-streams`): the SHA-256 of a session's bytes at the sender's
// input and at the receiver's output, for the test bed and the benchmarks. It runs on one worker
// thread per process, not on the relay's event loop: hashing every byte costs as much CPU as a
// third of the relay's own per-byte work (SHA-256 runs at ~1.5 GB/s here), and a check of the
// relay must neither slow the migration down nor count as relay work. The worker reports its own
// thread CPU time, which the stats give as `streamHashCpuSeconds` so that benchmarks subtract it.
import { Worker } from 'node:worker_threads';

/** Bytes copied per message to the worker: one post per MiB, not one per socket read. */
const BLOCK = 1 << 20;

// Plain CommonJS (an eval worker): no module path to resolve from source or from the built image.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  let h = hashes.get(m.id);
  if (!h) { h = crypto.createHash('sha256'); hashes.set(m.id, h); }
  if (m.block) h.update(new Uint8Array(m.block, 0, m.length));
  if (m.end) {
    hashes.delete(m.id);
    const cpu = process.threadCpuUsage();
    parentPort.postMessage({ id: m.id, hex: h.digest('hex'), cpuMicros: cpu.user + cpu.system });
  }
});
`;

interface Reply { id: number; hex: string; cpuMicros: number }

/** One worker for all of a process's streams; it exits with the process (unref'd). */
export class StreamHashPool {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (hex: string) => void>();
  /** The worker's thread CPU time so far, as of its last reply. */
  cpuSeconds = 0;

  open(): StreamHash {
    return new StreamHash(this, this.nextId++);
  }

  /** @internal */
  post(id: number, block: Buffer | undefined, end: boolean): Promise<string> | undefined {
    const w = this.ensureWorker();
    const msg = { id, end, ...(block ? { block: block.buffer, length: block.length } : {}) };
    if (!end) { w.postMessage(msg, block ? [block.buffer as ArrayBuffer] : []); return undefined; }
    const done = new Promise<string>((resolve) => this.waiting.set(id, resolve));
    w.postMessage(msg, block ? [block.buffer as ArrayBuffer] : []);
    return done;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (r: Reply) => {
      this.cpuSeconds = r.cpuMicros / 1e6;
      this.waiting.get(r.id)?.(r.hex);
      this.waiting.delete(r.id);
    });
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

/** The SHA-256 of one stream: update() copies into MiB blocks, digest() resolves once hashed. */
export class StreamHash {
  private block: Buffer | undefined;
  private used = 0;
  private ended = false;

  private readonly pool: StreamHashPool;
  private readonly id: number;

  constructor(pool: StreamHashPool, id: number) {
    this.pool = pool;
    this.id = id;
  }

  /** The chunk may be reused by the caller once this returns (its bytes are copied). */
  update(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      // allocUnsafeSlow: a block of its own (not a pool slice), so that its memory can be moved to the worker.
      this.block ??= Buffer.allocUnsafeSlow(BLOCK);
      const n = chunk.copy(this.block, this.used, off);
      this.used += n;
      off += n;
      if (this.used === BLOCK) this.flush(false);
    }
  }

  digest(): Promise<string> {
    if (this.ended) throw new Error('stream hash already finished');
    this.ended = true;
    return this.flush(true)!;
  }

  private flush(end: boolean): Promise<string> | undefined {
    const b = this.block && this.used ? this.block.subarray(0, this.used) : undefined;
    this.block = undefined;
    this.used = 0;
    return this.pool.post(this.id, b, end);
  }
}
