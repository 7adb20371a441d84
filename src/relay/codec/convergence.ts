// Smart stop-and-copy signal (CloudNet's "Smart Stop & Copy"): from the per-round figures the
// relay observes, decide whether more pre-copy rounds still pay off. Pre-copy converges while each
// round re-sends fewer pages than the one before; once the dirty set stops shrinking, every
// further round costs a full round of WAN time and removes nothing, so the controller should stop
// iterating (raise QEMU's downtime-limit, or switch to post-copy) at the local minimum.
import type { RoundStats } from './stats.ts';

export interface ConvergenceAdvice {
  /** Completed rounds considered (the round in progress is excluded). */
  rounds: number;
  trend: 'shrinking' | 'flat' | 'growing' | 'unknown';
  /** True when the last `window` rounds did not shrink the dirty set by at least `minGain`. */
  stopNow: boolean;
  /** Pages of the smallest round seen: the best stop-and-copy set so far. */
  minPages: number;
  /** Downtime-limit (ms) that would make QEMU stop now, given the relay's stream throughput. */
  suggestedDowntimeMs?: number;
  reason: string;
}

export interface AdviceOptions {
  /** Rounds without progress before stopping (CloudNet used a short window). */
  window?: number;
  /** A round must have at most (1 - minGain) of the previous round's pages to count as progress. */
  minGain?: number;
  /** Stream bytes per second the relay currently forwards (input side). */
  throughputBps?: number;
  pageBytes?: number;
}

export function convergenceAdvice(all: RoundStats[], o: AdviceOptions = {}): ConvergenceAdvice {
  const window = o.window ?? 2;
  const minGain = o.minGain ?? 0.1;
  const done = all.slice(0, -1); // the last round may still be in progress
  const pages = done.map((r) => r.pages + r.zeroPages);
  const minPages = pages.length ? Math.min(...pages) : 0;
  if (done.length < window + 1) {
    return { rounds: done.length, trend: 'unknown', stopNow: false, minPages, reason: `only ${done.length} completed rounds` };
  }
  let progress = 0;
  for (let i = done.length - window; i < done.length; i++) if (pages[i] <= pages[i - 1] * (1 - minGain)) progress++;
  const last = pages[pages.length - 1];
  const before = pages[pages.length - 1 - window];
  const trend = last <= before * (1 - minGain) ? 'shrinking' : last >= before * (1 + minGain) ? 'growing' : 'flat';
  const stopNow = progress === 0;
  const advice: ConvergenceAdvice = {
    rounds: done.length, trend, stopNow, minPages,
    reason: stopNow ? `no round of the last ${window} shrank the dirty set by ${Math.round(minGain * 100)} %` : `${progress} of the last ${window} rounds made progress`,
  };
  if (o.throughputBps && o.throughputBps > 0) {
    const bytes = last * (o.pageBytes ?? 4096);
    advice.suggestedDowntimeMs = Math.ceil((bytes / o.throughputBps) * 1000);
  }
  return advice;
}
