// Client-side rate limiting per cluster, as client-go's flowcontrol.NewTokenBucketRateLimiter
// (the QPS/Burst of rest.Config): `burst` requests may go at once, then `qps` per second on
// average. Callers wait in arrival order, so a burst of reconciles cannot starve one of them, and
// waiting honours the caller's AbortSignal. One limiter per RestClient, i.e. per cluster.
import { realClock, type Clock } from './clock.ts';

export interface RateLimit {
  /** Sustained requests per second; 0 or less disables limiting. */
  qps: number;
  /** Requests allowed at once after a quiet period. */
  burst: number;
}

interface Waiter {
  resolve(): void;
  reject(reason: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;
  private readonly waiters: Waiter[] = [];
  private timer: unknown;

  constructor(limit: RateLimit, clock: Clock = realClock) {
    this.qps = limit.qps;
    this.burst = Math.max(1, Math.floor(limit.burst));
    this.clock = clock;
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /** Callers currently waiting for a token. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves when the caller may send; rejects with the signal's reason if it aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
      this.schedule();
    });
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.waiters.length === 0) return;
    const ms = Math.max(1, Math.ceil(((1 - this.tokens) / this.qps) * 1000));
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiters.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        const w = this.waiters.shift()!;
        if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
        w.resolve();
      }
      this.schedule();
    }, ms);
  }
}
