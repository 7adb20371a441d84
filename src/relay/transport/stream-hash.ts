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
import crypto from 'node:crypto';

/** One per relay process: opens the hashes of its streams and sums the CPU (and time) they cost. */
export class StreamHashPool {
  private cpuMicros = 0;
  private wallMs = 0;

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

  constructor(pool: StreamHashPool) {
    this.pool = pool;
  }

  /** Hashes the chunk now: the caller may reuse it once this returns. */
  update(chunk: Uint8Array): void {
    if (this.hex !== undefined) throw new Error('stream hash already finished');
    this.pool.measured(() => this.h.update(chunk));
  }

  /** The stream's SHA-256 (hex); later calls return the same. */
  digest(): string {
    this.hex ??= this.pool.measured(() => this.h.digest('hex'));
    return this.hex;
  }
}
