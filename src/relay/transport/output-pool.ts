// The receiver's decode buffers: a batch is decoded into one, which goes back to the pool when
// the destination socket has taken its bytes.
//
// Why size classes and a byte cap (not a few buffers of the largest batch): the encoder's batches
// are bounded by 512 KiB of ops, so a QEMU stream's batches carry ~0.5 MiB of output each, and a
// session's 8 MiB credit window keeps ~17 of them queued at a destination that reads slowly (a
// busy QEMU). A pool of four 4 MiB buffers ran out there: every further batch allocated 4 MiB and
// dropped it again, and that external memory made V8 run a full mark-compact every ~60 ms (14 in
// a 1.7 s migration at 1 Gbit/s, ~120 ms of the receiver's CPU).
import { Buffer } from 'node:buffer';

/** Size classes are powers of two from 512 KiB, plus room for the record that ends a batch
 *  beyond its nominal bound: 576 KiB holds a batch of 512 KiB of ops (a QEMU stream's usual
 *  batch), 4160 KiB one of the encoder's 4 MiB raw bound. */
const MIN_CLASS = 512 << 10;
const SLACK = 64 << 10;

export class OutputPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Per size class: buffers taken and not given back, and the most there were at once. */
  private readonly inUse = new Map<number, { now: number; peak: number }>();
  private keptBytes = 0;
  private allocations = 0;
  private readonly maxKeptBytes: number;

  /** @param maxKeptBytes what the pool keeps of returned buffers; beyond it they are dropped. */
  constructor(maxKeptBytes: number) {
    this.maxKeptBytes = maxKeptBytes;
  }

  /** A buffer of at least `n` bytes: a kept one of its size class, or a new one. */
  take(n: number): Buffer {
    const size = OutputPool.classOf(n);
    let use = this.inUse.get(size);
    if (!use) this.inUse.set(size, use = { now: 0, peak: 0 });
    if (++use.now > use.peak) use.peak = use.now;
    const kept = this.free.get(size)?.pop();
    if (kept) {
      this.keptBytes -= kept.length;
      return kept;
    }
    this.allocations++;
    return Buffer.allocUnsafeSlow(size);
  }

  /** Hands a buffer from take() back (its contents are no longer needed). */
  give(buf: Buffer): void {
    const use = this.inUse.get(buf.length);
    if (use) use.now--;
    if (this.keptBytes + buf.length > this.maxKeptBytes) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, list = []);
    list.push(buf);
    this.keptBytes += buf.length;
  }

  /** Buffers allocated so far (a steady stream allocates only while the pool fills). */
  get allocated(): number {
    return this.allocations;
  }

  /** The most buffers in use at once, summed over the size classes: while the kept bytes stay
   *  under the cap, the pool allocates no more than this. */
  get peakInUse(): number {
    let n = 0;
    for (const u of this.inUse.values()) n += u.peak;
    return n;
  }

  /** Bytes held for reuse. */
  get kept(): number {
    return this.keptBytes;
  }

  /** The size class that holds `n` bytes. */
  static classOf(n: number): number {
    let size = MIN_CLASS;
    while (size + SLACK < n) size *= 2;
    return size + SLACK;
  }
}
