// Adaptive compression level. When the link is the bottleneck (its socket has a backlog, or the
// sessions have their credit windows in flight), spend CPU on a stronger level; when the relay
// itself is the bottleneck (the encoder keeps the main thread busy while the link idles), back off
// to a faster level or to no compression, but only after it persists, so that a short burst does
// not cost ratio. Incompressible data (e.g. random pages) is recognised per batch from a small
// sample and stored, without giving up on the compressible batches that follow.
import { zstdCompress } from './batch.ts';

export const LEVELS = [0, 1, 3, 6] as const;
const SAMPLE = 16 << 10;

export class AdaptiveLevel {
  private i: number;
  private readonly fixed: boolean;
  private readonly fixedLevel: number;
  private incompressibleRun = 0;
  private downStreak = 0;

  constructor(initial: number | 'auto' = 'auto') {
    this.fixed = initial !== 'auto';
    this.fixedLevel = initial === 'auto' ? -1 : initial;
    const idx = LEVELS.indexOf((initial === 'auto' ? 3 : initial) as (typeof LEVELS)[number]);
    this.i = idx >= 0 ? idx : 2;
  }

  /** Level for the next batch (0 = store). */
  next(): number {
    return this.fixed ? this.fixedLevel : LEVELS[this.i];
  }

  /**
   * After several incompressible batches in a row, test each batch on a sample first; true means
   * store it. Costs one level-1 compression of 16 KiB per batch while the data stays random.
   */
  skip(ops: Buffer): boolean {
    if (this.fixed || this.incompressibleRun < 2 || ops.length < 2 * SAMPLE) return false;
    const sample = ops.subarray(0, SAMPLE);
    if (zstdCompress(sample, 1).length > SAMPLE * 0.95) return true;
    this.incompressibleRun = 0;
    return false;
  }

  /** Reports a compressed batch's outcome, for the incompressible-data detector. */
  observe(opsLen: number, packedLen: number): void {
    if (this.fixed || opsLen < 4096) return;
    if (packedLen > opsLen * 0.97) this.incompressibleRun++;
    else this.incompressibleRun = 0;
  }

  /** linkBusy: the link is the bottleneck; cpuBusy: the relay's CPU is. Called every ~100 ms. */
  feedback(linkBusy: boolean, cpuBusy: boolean): void {
    if (this.fixed) return;
    if (linkBusy && !cpuBusy) {
      this.downStreak = 0;
      if (this.i < LEVELS.length - 1) this.i++;
    } else if (cpuBusy && !linkBusy) {
      if (++this.downStreak >= 3 && this.i > 0) {
        this.i--;
        this.downStreak = 0;
      }
    } else {
      this.downStreak = 0;
    }
  }

  get level(): number {
    return this.next();
  }
}
