// End-to-end stream check (`--hash-streams`): the SHA-256 of a session's bytes at the sender's
// input and at the receiver's output, for the test bed and the benchmarks. It runs on one worker
// thread per process, not on the relay's event loop: hashing every byte costs as much CPU as a
// third of the relay's own per-byte work (SHA-256 runs at ~1.5 GB/s here), and a check of the
// relay must neither slow the migration down nor count as relay work. The worker reports its own
// thread CPU time, which the stats give as `streamHashCpuSeconds` so that benchmarks subtract it.
// Two more things keep the check out of the relay's way (measured with perf in a 1 Gbit/s WAN
// run, where the two relays, both QEMUs and the emulator share 2 cores): the worker runs at the
// lowest CPU priority (nice 19), so it hashes behind the stream with the CPU the migration leaves
// (a session's record waits for its digest); and the relay copies into a few reused shared
// blocks that the worker hands back, instead of a fresh MiB per MiB (whose page faults and
// clearing cost the relay's own thread ~0.05 CPU-s per 150 MB).
import { Worker } from 'node:worker_threads';

/** Bytes copied per message to the worker: one post per MiB, not one per socket read. */
const BLOCK = 1 << 20;

// Plain CommonJS (an eval worker): no module path to resolve from source or from the built image.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
// The lowest priority for this thread only (Linux: setpriority on the thread id). Where that is
// not possible, the check merely competes with the relay as any thread would.
try { os.setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), 19); } catch {}
const hashes = new Map();
parentPort.on('message', (m) => {
  let h = hashes.get(m.id);
  if (!h) { h = crypto.createHash('sha256'); hashes.set(m.id, h); }
  if (m.block) {
    h.update(new Uint8Array(m.block, 0, m.length));
    parentPort.postMessage({ freed: m.slot });
  }
  if (m.end) {
    hashes.delete(m.id);
    const cpu = process.threadCpuUsage();
    parentPort.postMessage({ id: m.id, hex: h.digest('hex'), cpuMicros: cpu.user + cpu.system });
  }
});
`;

type Reply = { id: number; hex: string; cpuMicros: number } | { freed: number };

/** One worker for all of a process's streams; it exits with the process (unref'd). */
export class StreamHashPool {
  private worker: Worker | undefined;
  private nextId = 1;
  /** Shared blocks (by slot) and the slots the worker has finished with. */
  private readonly blocks: Buffer[] = [];
  private readonly free: number[] = [];
  private readonly waiting = new Map<number, (hex: string) => void>();
  /** The worker's thread CPU time so far, as of its last reply. */
  cpuSeconds = 0;

  open(): StreamHash {
    return new StreamHash(this, this.nextId++);
  }

  /** Shared blocks made so far (they are reused, so this stays near what the worker lags behind). */
  get blockCount(): number {
    return this.blocks.length;
  }

  /** A block to copy a stream's bytes into: a shared one the worker has handed back, else a new one. */
  takeBlock(): { slot: number; buf: Buffer } {
    const slot = this.free.pop();
    if (slot !== undefined) return { slot, buf: this.blocks[slot] };
    this.blocks.push(Buffer.from(new SharedArrayBuffer(BLOCK)));
    return { slot: this.blocks.length - 1, buf: this.blocks[this.blocks.length - 1] };
  }

  /** @internal */
  post(id: number, block: { slot: number; buf: Buffer; used: number } | undefined, end: boolean): Promise<string> | undefined {
    const w = this.ensureWorker();
    const msg = { id, end, ...(block ? { block: block.buf.buffer, slot: block.slot, length: block.used } : {}) };
    if (!end) { w.postMessage(msg); return undefined; }
    const done = new Promise<string>((resolve) => this.waiting.set(id, resolve));
    w.postMessage(msg);
    return done;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (r: Reply) => {
      if ('freed' in r) { this.free.push(r.freed); return; }
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
  private block: { slot: number; buf: Buffer } | undefined;
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
      this.block ??= this.pool.takeBlock();
      const n = chunk.copy(this.block.buf, this.used, off);
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
    // A block is posted even if empty (used 0): the worker hands every block back to the pool.
    const posted = this.block ? { ...this.block, used: this.used } : undefined;
    this.block = undefined;
    this.used = 0;
    return this.pool.post(this.id, posted, end);
  }
}
