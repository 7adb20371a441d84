// A rate-limited work queue with controller-runtime/client-go semantics:
// - keys are deduplicated while waiting ("dirty" set);
// - a key is handed to at most one worker at a time ("processing" set); a key added while it is
//   being processed is re-queued when the worker calls done();
// - addAfter() delays an add (the earliest pending time per key wins);
// - addRateLimited() delays by the key's exponential failure backoff, forget() resets it;
// - shutDown() stops handing out work; shutDownWithDrain() also waits for in-flight items;
// - two priorities, as controller-runtime's priority queue: keys added with `low` wait behind the
//   others (a burst of new objects must not delay reacting to changes of objects in flight); a
//   key added again at normal priority while it waits low moves up; `maxLowInFlight` keeps
//   some workers free for normal keys however many low ones wait.
import { ItemExponentialRateLimiter } from './backoff.ts';
import { realClock, type Clock } from './clock.ts';

/** Hooks for metrics; the queue itself stays free of any metrics library. */
export interface WorkqueueMetricsSink {
  add(): void;
  depth(n: number): void;
  /** Seconds an item waited between add and get, and whether it waited at low priority. */
  queueLatency(seconds: number, low?: boolean): void;
  /** Seconds an item was processed between get and done. */
  workDuration(seconds: number): void;
  retry(): void;
}

export interface RateLimiter {
  when(key: string): number;
  forget(key: string): void;
  numRequeues(key: string): number;
}

export interface WorkqueueOptions {
  name?: string;
  /** At most this many low-priority keys in flight at once (default: no limit). */
  maxLowInFlight?: number;
  clock?: Clock;
  rateLimiter?: RateLimiter;
  metrics?: WorkqueueMetricsSink;
}

export class Workqueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly limiter: RateLimiter;
  private readonly metrics?: WorkqueueMetricsSink;

  /** [normal, low]; an entry whose level in `queuedAt` differs is stale (moved up) and skipped. */
  private readonly queues: [string[], string[]] = [[], []];
  private readonly queuedAt = new Map<string, 0 | 1>();
  /** Keys waiting or re-added while in flight, with the priority level they will queue at. */
  private readonly dirty = new Map<string, 0 | 1>();
  private readonly processing = new Map<string, number>(); // key -> start time
  private readonly lowInFlight = new Set<string>();
  private readonly maxLowInFlight: number;
  private readonly addedAt = new Map<string, number>(); // key -> time it entered the queue
  private readonly waiting = new Map<string, { at: number; handle: unknown }>();
  private getters: Array<(key: string | undefined) => void> = [];
  private drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(opts: WorkqueueOptions = {}) {
    this.name = opts.name ?? 'queue';
    this.clock = opts.clock ?? realClock;
    this.limiter = opts.rateLimiter ?? new ItemExponentialRateLimiter();
    this.metrics = opts.metrics;
    this.maxLowInFlight = Math.max(1, opts.maxLowInFlight ?? Infinity);
  }

  add(key: string, opts: { low?: boolean } = {}): void {
    if (this.shuttingDown) return;
    const level: 0 | 1 = opts.low ? 1 : 0;
    const pending = this.dirty.get(key);
    if (pending !== undefined) {
      if (level >= pending) return;
      this.dirty.set(key, level);
      // Waiting at low priority: queue it again at normal; the low entry becomes stale.
      if (this.queuedAt.get(key) === 1) {
        this.queuedAt.set(key, 0);
        this.queues[0].push(key);
        this.addedAt.set(key, this.clock.now()); // its wait as a change starts now
      }
      return;
    }
    this.metrics?.add();
    this.dirty.set(key, level);
    if (this.processing.has(key)) return; // re-queued by done()
    this.enqueue(key);
  }

  /** Adds `key` after `delayMs`; if already waiting, the earlier time wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.clock.now() + delayMs;
    const existing = this.waiting.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, handle });
  }

  addRateLimited(key: string): void {
    this.metrics?.retry();
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }

  /** Next key to process, or undefined once the queue is shut down. Callers must call done(key). */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.pop();
    if (key !== undefined) return Promise.resolve(this.startProcessing(key));
    return new Promise((resolve) => this.getters.push(resolve));
  }

  private pop(): string | undefined {
    for (const level of [0, 1] as const) {
      if (level === 1 && this.lowInFlight.size >= this.maxLowInFlight) break;
      const q = this.queues[level];
      while (q.length > 0) {
        const key = q.shift()!;
        if (this.queuedAt.get(key) === level) return key;
      }
    }
    return undefined;
  }

  done(key: string): void {
    const started = this.processing.get(key);
    if (started === undefined) return;
    this.processing.delete(key);
    // A low slot freed: a worker waiting while only low keys were queued may take one now.
    if (this.lowInFlight.delete(key)) this.dispatch();
    this.metrics?.workDuration((this.clock.now() - started) / 1000);
    if (this.dirty.has(key) && !this.shuttingDown) this.enqueue(key);
    if (this.processing.size === 0) this.notifyDrained();
  }

  /** Stops handing out work: pending get()s resolve undefined; delayed adds are dropped. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { handle } of this.waiting.values()) this.clock.clearTimeout(handle);
    this.waiting.clear();
    const getters = this.getters;
    this.getters = [];
    for (const g of getters) g(undefined);
    if (this.processing.size === 0) this.notifyDrained();
  }

  /** shutDown(), then wait until in-flight items are done (or `timeoutMs` passes). Returns true if drained. */
  async shutDownWithDrain(timeoutMs = Infinity): Promise<boolean> {
    this.shutDown();
    if (this.processing.size === 0) return true;
    return new Promise((resolve) => {
      let handle: unknown;
      const onDrained = () => {
        if (handle !== undefined) this.clock.clearTimeout(handle);
        resolve(true);
      };
      this.drainWaiters.push(onDrained);
      if (Number.isFinite(timeoutMs)) {
        handle = this.clock.setTimeout(() => {
          this.drainWaiters = this.drainWaiters.filter((w) => w !== onDrained);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Keys waiting to be handed out (not counting delayed or in-flight keys). */
  len(): number {
    return this.queuedAt.size;
  }

  inFlight(): number {
    return this.processing.size;
  }

  /** The key in flight was handed out at low priority (a new object). */
  isLow(key: string): boolean {
    return this.lowInFlight.has(key);
  }

  /** Keys scheduled by addAfter/addRateLimited and not yet due. */
  delayed(): number {
    return this.waiting.size;
  }

  /** Sum of the ages of in-flight items (workqueue_unfinished_work_seconds). */
  unfinishedWorkSeconds(): number {
    const now = this.clock.now();
    let sum = 0;
    for (const start of this.processing.values()) sum += now - start;
    return sum / 1000;
  }

  /** Age of the oldest in-flight item (workqueue_longest_running_processor_seconds). */
  longestRunningProcessorSeconds(): number {
    const now = this.clock.now();
    let max = 0;
    for (const start of this.processing.values()) max = Math.max(max, now - start);
    return max / 1000;
  }

  private enqueue(key: string): void {
    this.addedAt.set(key, this.clock.now());
    const level = this.dirty.get(key) ?? 0;
    this.queuedAt.set(key, level);
    this.queues[level].push(key);
    this.metrics?.depth(this.queuedAt.size);
    this.dispatch();
  }

  /** Hands queued keys to waiting workers, as far as priorities and the low limit allow. */
  private dispatch(): void {
    while (this.getters.length > 0 && !this.shuttingDown) {
      const key = this.pop();
      if (key === undefined) return;
      this.getters.shift()!(this.startProcessing(key));
    }
  }

  private startProcessing(key: string): string {
    const now = this.clock.now();
    const added = this.addedAt.get(key) ?? now;
    this.addedAt.delete(key);
    if (this.queuedAt.get(key) === 1) this.lowInFlight.add(key);
    this.queuedAt.delete(key);
    this.metrics?.queueLatency((now - added) / 1000, this.lowInFlight.has(key));
    this.metrics?.depth(this.queuedAt.size);
    this.dirty.delete(key);
    this.processing.set(key, now);
    return key;
  }

  private notifyDrained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
