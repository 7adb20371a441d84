// Two small ways of doing a thing once instead of once per migration: TtlMemo reuses a good
// answer for a while (e.g. "namespace x exists on site-b"), SingleFlight runs one job per key and
// version and lets concurrent callers share it (e.g. the CA bundle exchange of a Site pair).

interface Remembered {
  at: number;
  value: Promise<unknown>;
}

export class TtlMemo {
  private readonly entries = new Map<string, Remembered>();
  private readonly now: () => number;
  private readonly maxEntries: number;

  constructor(now: () => number = Date.now, maxEntries = 4096) {
    this.now = now;
    this.maxEntries = maxEntries;
  }

  /**
   * fn's last `ok` result if younger than ttlMs; otherwise runs fn (a bad result or an error is
   * not kept). Callers arriving while fn runs share its answer.
   */
  get<T>(key: string, ttlMs: number, ok: (v: T) => boolean, fn: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < ttlMs) return hit.value as Promise<T>;
    if (this.entries.size >= this.maxEntries) this.evictOld(ttlMs);
    const entry: Remembered = { at: this.now(), value: Promise.resolve() };
    const value = fn().then((v) => {
      if (ok(v)) entry.at = this.now();
      else if (this.entries.get(key) === entry) this.entries.delete(key);
      return v;
    }, (err: unknown) => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    });
    entry.value = value;
    this.entries.set(key, entry);
    return value;
  }

  private evictOld(ttlMs: number): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (now - e.at >= ttlMs) this.entries.delete(k);
    // Still full: forget the oldest half (Map iteration is insertion order).
    if (this.entries.size >= this.maxEntries) {
      let n = Math.floor(this.entries.size / 2);
      for (const k of this.entries.keys()) { if (n-- <= 0) break; this.entries.delete(k); }
    }
  }
}

export class SingleFlight {
  private readonly running = new Map<string, Promise<void>>();
  private readonly done = new Map<string, string>();
  /** Runs started (for tests and metrics). */
  runs = 0;

  /**
   * Runs fn unless it already ran successfully for this key at this version; callers arriving
   * while it runs wait for that run instead of starting another.
   */
  once(key: string, version: string, fn: () => Promise<void>): Promise<void> {
    const inFlight = this.running.get(key);
    if (inFlight) return inFlight;
    if (this.done.get(key) === version) return Promise.resolve();
    this.runs++;
    const run = fn().then(() => { this.done.set(key, version); }).finally(() => this.running.delete(key));
    this.running.set(key, run);
    return run;
  }
}
