// Client-side rate limiting per cluster, as client-go's flowcontrol.NewTokenBucketRateLimiter
// (the QPS/Burst of rest.Config): `burst` requests may go at once, then `qps` per second on
// average. Callers wait in arrival order within two priorities: requests made while reconciling
// a new object (low priority in the workqueue, see `requestPriority`) wait behind all others, so
// a burst of creations does not delay the writes of objects in flight (a client-side cousin of
// API Priority and Fairness). Waiting honours the caller's AbortSignal. One limiter per
// RestClient, i.e. per cluster.
import { AsyncLocalStorage } from 'node:async_hooks';
import { realClock, type Clock } from './clock.ts';

/** The priority of the work on whose behalf requests are made (set by the controller per reconcile). */
export const requestPriority = new AsyncLocalStorage<'low' | 'normal'>();

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
  /** [normal, low] */
  private readonly waiters: [Waiter[], Waiter[]] = [[], []];
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
    return this.waiters[0].length + this.waiters[1].length;
  }

  /** Resolves when the caller may send; rejects with the signal's reason if it aborts first. */
  acquire(signal?: AbortSignal, low = requestPriority.getStore() === 'low'): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.refill();
    if (this.waiting === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    const line = this.waiters[low ? 1 : 0];
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = line.indexOf(w);
          if (i >= 0) line.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      line.push(w);
      this.schedule();
    });
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.waiting === 0) return;
    const ms = Math.max(1, Math.ceil(((1 - this.tokens) / this.qps) * 1000));
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiting > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        const w = (this.waiters[0].length > 0 ? this.waiters[0] : this.waiters[1]).shift()!;
        if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
        w.resolve();
      }
      this.schedule();
    }, ms);
  }
}
