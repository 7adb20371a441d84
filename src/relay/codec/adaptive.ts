// Adaptive effort: how much CPU the sender spends per byte. When the link is the bottleneck (its
// socket has a backlog, or the sessions have their credit windows in flight), spend CPU on a
// stronger zstd level; when the relay itself is the bottleneck (its CPU is busy while the link
// idles), shed work step by step, but only after it persists, so that a short burst does not cost
// ratio: a lower zstd level, then stored batches, then pages passed through (neither hashed nor
// cached). There is no "no deltas" step between those two: measured, it costs more CPU than stored
// batches (it still fingerprints every page, and frames, encrypts and writes more bytes: 1.30-1.51
// vs 1.04-1.40 CPU-s per 200 MB of memwriter stream), so it would shed nothing. The relay then costs about what carrying the bytes costs, so it is
// never much slower than a plain migration. Incompressible data (e.g. random pages) is recognised
// per batch from a small sample and stored, without giving up on the compressible batches that
// follow.
import { zstdCompress } from './batch.ts';

/** What the encoder does with a page (OpOutput.effort). */
export const EFFORT_PASS = 0; // passed through: no fingerprint, no cache, no delta
export const EFFORT_FULL = 2; // deduplicated, delta against the previous version, else literal

interface Step { effort: number; level: number; mode: string }

/** The ladder, least effort first; the adaptive policy moves one step at a time. */
export const STEPS: readonly Step[] = [
  { effort: EFFORT_PASS, level: 0, mode: 'pass-through' },
  { effort: EFFORT_FULL, level: 0, mode: 'stored' },
  { effort: EFFORT_FULL, level: 1, mode: 'zstd-1' },
  { effort: EFFORT_FULL, level: 3, mode: 'zstd-3' },
  { effort: EFFORT_FULL, level: 6, mode: 'zstd-6' },
];
const stepOf = (mode: string): number => STEPS.findIndex((s) => s.mode === mode);
const DEFAULT_STEP = stepOf('zstd-3');
const STORED_STEP = stepOf('stored');
const ZSTD1_STEP = stepOf('zstd-1');
/**
 * Link capacities (bytes/s) from which a session starts cheaper than zstd-3 (startFor). From
 * ~160 Mbit/s it starts at zstd-1. Compression runs on its own thread (transport/zstd-pool.ts),
 * and at zstd-1 the relay's event loop has less to do than with stored batches (40 % of the bytes
 * to frame, checksum, encrypt and write), so zstd-1 stays the start up to links that drain faster
 * than that thread compresses on a shared core: measured at 1 Gbit/s, 10 ms (probed ~905 Mbit/s),
 * fixed zstd-1 took 1293-1355 ms and 50 MB against 1284-1445 ms and 62-84 MB from a stored
 * start. From ~1.6 Gbit/s (wanem's unshaped link probes ~2.4 Gbit/s here) it starts with stored
 * batches: deduplicated and delta-encoded, no zstd. The cheaper steps are left to the feedback,
 * when even those are more than the CPU keeps up with.
 */
const FAST_LINK_BPS = 200e6;
const MEDIUM_LINK_BPS = 20e6;
const SAMPLE = 16 << 10;
/** Feedback periods (~100 ms each) in a row with the CPU as the bottleneck before the first step down. */
const DOWN_AFTER = 2;

export class AdaptiveLevel {
  private i: number;
  private readonly fixed: boolean;
  private readonly fixedLevel: number;
  private incompressibleRun = 0;
  /** The lowest step CPU-bound feedback may take (startFor: zstd-1 on any link zstd-1 keeps pace with). */
  private floor = 0;
  private downStreak = 0;
  /** Steps taken (down, up): the stats say how often the relay shed work. */
  stepsDown = 0;
  stepsUp = 0;

  constructor(initial: number | 'auto' = 'auto') {
    this.fixed = initial !== 'auto';
    this.fixedLevel = initial === 'auto' ? -1 : initial;
    const idx = STEPS.findIndex((s) => s.effort === EFFORT_FULL && s.level === initial);
    this.i = idx >= 0 ? idx : DEFAULT_STEP;
  }

  /** Level for the next batch (0 = store). */
  next(): number {
    return this.fixed ? this.fixedLevel : STEPS[this.i].level;
  }

  /** What the encoder does with pages now (EFFORT_*); a fixed level keeps full effort. */
  get effort(): number {
    return this.fixed ? EFFORT_FULL : STEPS[this.i].effort;
  }

  /** The current step's name, for the stats ('zstd-3', 'stored', 'pass-through'...). */
  get mode(): string {
    return this.fixed ? (this.fixedLevel === 0 ? 'stored' : `zstd-${this.fixedLevel}`) : STEPS[this.i].mode;
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

  /**
   * The first step for a link of this probed capacity (link-probe.ts), if no feedback has moved
   * the policy yet: on a fast link the feedback would otherwise spend the first ~0.5 s of the
   * first migration compressing at a rate below the link's.
   */
  startFor(linkBytesPerSec: number): void {
    if (this.fixed) return;
    // Any link that starts at zstd-1 or above also sets a floor there: below zstd-1 the relay puts
    // 2.5-3 times the bytes on the link and saves CPU on its event loop only (compression has its
    // own thread), which did not buy time. At 1 Gbit/s, 10 ms (probed ~905 Mbit/s), 3 runs each,
    // on a loaded machine: fixed zstd-1 2.2-2.4 s and 50 MB, the ladder shedding to stored and
    // pass-through in the first round 2.2-2.6 s and 105-131 MB (plain 1.5-1.8 s). On a slower
    // link more bytes only wait longer for it. Only a link probed faster than zstd-1 keeps pace
    // with sheds further (and a registered flow bypasses the relay from ~1.5 Gbit/s: sender.ts).
    this.floor = linkBytesPerSec < FAST_LINK_BPS ? ZSTD1_STEP : 0;
    if (this.stepsUp || this.stepsDown) { this.i = Math.max(this.i, this.floor); return; }
    this.i = linkBytesPerSec >= FAST_LINK_BPS ? STORED_STEP : linkBytesPerSec >= MEDIUM_LINK_BPS ? ZSTD1_STEP : DEFAULT_STEP;
  }

  /** The next step down (if CPU-bound) passes pages through: every byte then crosses the link. */
  get downIsPassThrough(): boolean {
    return !this.fixed && this.i > this.floor && STEPS[this.i - 1].effort === EFFORT_PASS;
  }

  /** linkBusy: the link is the bottleneck; cpuBusy: the relay's CPU is. Called every ~100 ms. */
  feedback(linkBusy: boolean, cpuBusy: boolean): void {
    if (this.fixed) return;
    if (linkBusy && !cpuBusy) {
      this.downStreak = 0;
      if (this.i < STEPS.length - 1) { this.i++; this.stepsUp++; }
    } else if (cpuBusy && !linkBusy) {
      if (++this.downStreak >= DOWN_AFTER && this.i > this.floor) {
        this.i--;
        this.stepsDown++;
        // Still CPU-bound one period later: the next step at once (zstd-3 to pass-through in
        // ~0.5 s; a migration at 1 Gbit/s may last only a few seconds).
        this.downStreak = DOWN_AFTER - 1;
      }
    } else {
      this.downStreak = 0;
    }
  }

  get level(): number {
    return this.next();
  }
}
