// Adaptive compression level. When the link is the bottleneck (the outbound socket has a
// backlog), spend CPU on a stronger level; when the relay itself is the bottleneck (the socket
// drains faster than batches arrive while compression is queued), back off to a faster level or
// to no compression. Incompressible sessions are detected and stored for a while.

export const LEVELS = [0, 1, 3, 6] as const;

export class AdaptiveLevel {
  private i: number;
  private readonly fixed: boolean;
  private incompressibleRun = 0;
  private skipUntil = 0;
  private n = 0;
  private readonly fixedLevel: number;

  constructor(initial: number | 'auto' = 'auto') {
    this.fixed = initial !== 'auto';
    const start = initial === 'auto' ? 3 : initial;
    const idx = LEVELS.indexOf(start as (typeof LEVELS)[number]);
    this.i = idx >= 0 ? idx : 2;
    this.fixedLevel = initial === 'auto' ? -1 : initial;
  }

  /** Level for the next batch (0 = store). */
  next(): number {
    this.n++;
    if (this.fixed) return this.fixedLevel;
    if (this.n < this.skipUntil) return 0;
    return LEVELS[this.i];
  }

  /** Reports a compressed batch's outcome, for the incompressible-data detector. */
  observe(opsLen: number, packedLen: number): void {
    if (this.fixed || opsLen < 4096) return;
    if (packedLen > opsLen * 0.97) {
      if (++this.incompressibleRun >= 4) {
        this.skipUntil = this.n + 32; // retry after 32 batches
        this.incompressibleRun = 0;
      }
    } else {
      this.incompressibleRun = 0;
    }
  }

  /** linkBusy: the socket had a backlog; cpuBusy: compression work was queued while the link idled. */
  feedback(linkBusy: boolean, cpuBusy: boolean): void {
    if (this.fixed) return;
    if (cpuBusy && !linkBusy && this.i > 0) this.i--;
    else if (linkBusy && !cpuBusy && this.i < LEVELS.length - 1) this.i++;
  }

  get level(): number {
    return this.fixed ? this.fixedLevel : LEVELS[this.i];
  }
}
