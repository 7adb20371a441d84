// Smart stop-and-copy (CloudNet, VEE 2011 §3.4) for the QEMU stand-in: from the per-round figures
// of a running pre-copy, decide when further rounds stop paying off, and then make QEMU stop and
// copy at once by raising its downtime-limit to what the current dirty set needs.
//
// Per-round figures come from QEMU's query-migrate samples, the same source KubeVirt's
// virt-launcher migration monitor watches: when ram.dirty-sync-count goes from k to k+1, the
// `remaining` bytes at that moment are the dirty set round k+1 has to send. Pre-copy makes
// progress while that set shrinks; CloudNet stops once it has not shrunk for a few rounds (a
// working set that is rewritten faster than the WAN can carry it never will), accepting the
// downtime of the smallest set it can get instead of iterating forever.
import type { MigrationSample } from '../../src/qemu/migrate.ts';

export interface SmartStopOptions {
  /** Rounds without progress before stopping (default 2). */
  window?: number;
  /** A round counts as progress when its dirty set is at most (1 - minGain) of the previous (default 0.1). */
  minGain?: number;
  /** Never accept more downtime than this; beyond it QEMU's own rule goes on (default 5000 ms). */
  maxDowntimeMs?: number;
  /** Headroom on the computed downtime (default 1.25). */
  margin?: number;
}

export interface StopDecision {
  round: number;
  dirtyBytes: number;
  downtimeLimitMs: number;
  reason: string;
}

export class SmartStop {
  /** Dirty-set size at the start of each round (index = round number). */
  readonly rounds: number[] = [];
  decided?: StopDecision;
  private lastRound = 0;
  private readonly window: number;
  private readonly minGain: number;
  private readonly maxDowntimeMs: number;
  private readonly margin: number;

  constructor(o: SmartStopOptions = {}) {
    this.window = o.window ?? 2;
    this.minGain = o.minGain ?? 0.1;
    this.maxDowntimeMs = o.maxDowntimeMs ?? 5000;
    this.margin = o.margin ?? 1.25;
  }

  /** Feeds one sample; returns a decision the first time stopping pays off, else undefined. */
  observe(s: MigrationSample): StopDecision | undefined {
    if (this.decided || s.status !== 'active' || s.rounds <= this.lastRound) return undefined;
    this.lastRound = s.rounds;
    this.rounds[s.rounds] = s.remaining;
    const sets = this.rounds.slice(2).filter((x) => x !== undefined); // round 1 is the full first pass
    if (sets.length < this.window + 1) return undefined;
    let progress = 0;
    for (let i = sets.length - this.window; i < sets.length; i++) if (sets[i] <= sets[i - 1] * (1 - this.minGain)) progress++;
    if (progress > 0) return undefined;
    // Throughput into the stream (QEMU's ram.mbps, megabits/s): whatever reduces the stream on the
    // path shows here as a higher rate, which is what the final copy will see.
    const bytesPerMs = (s.mbps * 1e6) / 8 / 1000;
    if (!(bytesPerMs > 0)) return undefined;
    const downtimeLimitMs = Math.ceil((s.remaining / bytesPerMs) * this.margin);
    if (downtimeLimitMs > this.maxDowntimeMs) return undefined;
    this.decided = {
      round: s.rounds, dirtyBytes: s.remaining, downtimeLimitMs,
      reason: `dirty set did not shrink by ${Math.round(this.minGain * 100)} % in ${this.window} rounds (${sets.slice(-this.window - 1).map((b) => Math.round(b / 1e6)).join(' -> ')} MB)`,
    };
    return this.decided;
  }
}
