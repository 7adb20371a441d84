// Backoff math shared by the workqueue (per-key failures, no jitter: controller-runtime's
// ItemExponentialFailureRateLimiter) and by informers/leader election (restart delays, with jitter
// so that many watchers restarting after an API server blip do not stampede it).

/** `baseMs * 2^failures`, capped at `maxMs`. Safe for huge failure counts. */
export function exponentialDelay(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return Math.min(baseMs, maxMs);
  // 2^1024 is Infinity; stop early to keep the arithmetic finite.
  if (failures > 60) return maxMs;
  return Math.min(baseMs * 2 ** failures, maxMs);
}

/** Adds up to `factor * delay` of random jitter (client-go's wait.Jitter). */
export function jitter(delayMs: number, factor = 1.0, random: () => number = Math.random): number {
  return delayMs + random() * factor * delayMs;
}

/** Per-key exponential failure backoff: 5 ms, 10 ms, 20 ms, ... capped at 1000 s by default. */
export class ItemExponentialRateLimiter {
  private readonly failures = new Map<string, number>();
  readonly baseMs: number;
  readonly maxMs: number;

  constructor(baseMs = 5, maxMs = 1_000_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  /** Delay before the next retry of `key`; each call counts one more failure. */
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return exponentialDelay(n, this.baseMs, this.maxMs);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

/** Restart backoff for long-running loops (watches, lease renewals): grows on failure, resets on success. */
export class RestartBackoff {
  private failures = 0;
  readonly initialMs: number;
  readonly maxMs: number;
  private readonly random: () => number;

  constructor(initialMs = 200, maxMs = 30_000, random: () => number = Math.random) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  /** Next delay: exponential in the number of consecutive failures, plus up to 100% jitter, capped. */
  next(): number {
    const d = exponentialDelay(this.failures++, this.initialMs, this.maxMs);
    return Math.min(jitter(d, 1.0, this.random), this.maxMs);
  }

  reset(): void {
    this.failures = 0;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
