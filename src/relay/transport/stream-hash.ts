// End-to-end stream check (`--hash-streams`): the SHA-256 of a session's bytes at the sender's
// input and at the receiver's output, for the test bed and the benchmarks (not used in production).
//
// It hashes on the relay's own thread, as the bytes pass, and measures what that costs (the
// thread's CPU time around each update), which the stats give as `streamHashCpuSeconds` so that
// benchmarks subtract it from the relay's CPU. Why not on a worker thread, as before: the worker
// needs a copy of every chunk (the relay reuses its read buffers), and on a loaded machine a worker
// that should stay out of the way (nice 19) lags the stream by the whole migration, so the copies
// went into fresh shared blocks, not reused ones. Measured with a CPU profile of a 1 Gbit/s, 1-VM
// bench:wan run: feeding the worker took 220 ms of the sender's main thread and 185 ms of the
// receiver's per 150 MB stream (page faults and clearing of new blocks), plus much of the
// receiver's 250 ms of garbage collection (V8 collects when external memory grows). SHA-256 on
// this CPU (SHA extensions) takes ~90 ms per 150 MB in place, with no copy, no allocation and no
// second thread competing with QEMU for the cores.
//
// With a buffer (`--hash-streams-buffer-mb`, the benchmarks), the bytes are copied as they pass
// into memory set aside and pre-faulted when the relay starts (~11 ms per 150 MB, against ~85 ms
// of SHA-256), and hashed when the session is over: the check then costs the migration it checks
// almost nothing, as in production, where there is no check. A session that outgrows the buffer
// hashes what it holds there and goes on in place.
import crypto from 'node:crypto';

/** Blocks of the deferred check's buffer. */
const BLOCK = 1 << 20;

/** One per relay process: opens the hashes of its streams and sums the CPU (and time) they cost. */
export class StreamHashPool {
  private cpuMicros = 0;
  private wallMs = 0;
  /** The deferred check's free blocks (none: hash in place). */
  private readonly free: Buffer[] = [];
  private readonly blocks: number;

  /** @param bufferBytes memory for deferred hashing (0: hash as the bytes pass), allocated and
   *  touched now so that copying into it later costs no page faults. */
  constructor(bufferBytes = 0) {
    this.blocks = Math.ceil(Math.max(0, bufferBytes) / BLOCK);
    if (this.blocks > 0) {
      const all = Buffer.allocUnsafeSlow(this.blocks * BLOCK).fill(0);
      for (let i = 0; i < this.blocks; i++) this.free.push(all.subarray(i * BLOCK, (i + 1) * BLOCK));
    }
  }

  /** True when the check copies now and hashes at the session's end. */
  get deferred(): boolean {
    return this.blocks > 0;
  }

  /** Bytes of the deferred check's buffer not holding any stream's bytes now. */
  get freeBytes(): number {
    return this.free.length * BLOCK;
  }

  /** @internal A free block of the buffer, if any. */
  takeBlock(): Buffer | undefined {
    return this.free.pop();
  }

  /** @internal */
  giveBlocks(blocks: Buffer[]): void {
    for (const b of blocks) this.free.push(b);
  }

  open(): StreamHash {
    return new StreamHash(this);
  }

  /** CPU time this process's stream hashing has cost so far. */
  get cpuSeconds(): number {
    return this.cpuMicros / 1e6;
  }

  /** The check's share of the thread so far, CPU and elapsed (ms): for the CPU verdict (bottleneck.ts). */
  spent(): { cpuMs: number; wallMs: number } {
    return { cpuMs: this.cpuMicros / 1000, wallMs: this.wallMs };
  }

  /** @internal Runs `work` and adds the CPU time (and the elapsed time) it took on this thread. */
  measured<T>(work: () => T): T {
    const w0 = performance.now();
    const t0 = process.threadCpuUsage();
    try {
      return work();
    } finally {
      const t = process.threadCpuUsage(t0);
      this.cpuMicros += t.user + t.system;
      this.wallMs += performance.now() - w0;
    }
  }
}

/** The SHA-256 of one stream, updated as its bytes pass. */
export class StreamHash {
  private readonly h = crypto.createHash('sha256');
  private hex: string | undefined;
  private readonly pool: StreamHashPool;
  /** Deferred bytes, in order, after everything hashed so far; the last block holds `used`. */
  private held: Buffer[] = [];
  private used = 0;

  constructor(pool: StreamHashPool) {
    this.pool = pool;
  }

  /** True when the bytes are copied as they pass and hashed by digest(): call it once the session is over. */
  get deferred(): boolean {
    return this.pool.deferred;
  }

  /** Takes the chunk (hashed now, or copied to hash later): the caller may reuse it once this returns. */
  update(chunk: Uint8Array): void {
    if (this.hex !== undefined) throw new Error('stream hash already finished');
    this.pool.measured(() => (this.pool.deferred ? this.keep(chunk) : this.h.update(chunk)));
  }

  /** The stream's SHA-256 (hex); later calls return the same. */
  digest(): string {
    this.hex ??= this.pool.measured(() => {
      this.catchUp();
      return this.h.digest('hex');
    });
    return this.hex;
  }

  /** The stream will not be checked (its session failed): the deferred bytes' memory goes back. */
  release(): void {
    this.pool.giveBlocks(this.held);
    this.held = [];
    this.used = 0;
  }

  private keep(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.held.length === 0 || this.used === BLOCK) {
        let block = this.pool.takeBlock();
        if (!block) {
          // The buffer is full: hash this stream's share of it, which frees at least a block
          // unless other streams hold them all; then the rest is hashed in place.
          this.catchUp();
          block = this.pool.takeBlock();
          if (!block) { this.h.update(chunk.subarray(off)); return; }
        }
        this.held.push(block);
        this.used = 0;
      }
      const n = Math.min(chunk.length - off, BLOCK - this.used);
      this.held[this.held.length - 1].set(chunk.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
    }
  }

  private catchUp(): void {
    const last = this.held.length - 1;
    for (let i = 0; i <= last; i++) this.h.update(i === last ? this.held[i].subarray(0, this.used) : this.held[i]);
    this.release();
  }
}
