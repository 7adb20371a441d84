// The one way tests wait for something to become true: call `fn` until it returns a value (not
// undefined, null or false), then resolve with that value; fail after `timeoutMs` with what was
// awaited, how often it was tried, the last error and whatever `diagnostics` adds.
//
//   await waitFor(() => informer.synced, { what: 'informer synced' });
//   const wm = await waitFor(async () => (await getWM(c, ns, n))?.status, { what: 'a status', timeoutMs: 60_000 });
//
// An error thrown by `fn` counts as "not yet" (an API server restarting, CRD storage still
// initialising) and the last one is in the failure message; with `retryErrors: false` it fails the
// wait at once (a process that exited will not come up).
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** What is awaited, for the failure message: "Site site-b Ready". */
  what: string;
  /** Default 20 s. */
  timeoutMs?: number;
  /** Pause between attempts; default 50 ms. */
  intervalMs?: number;
  /** Treat an error from `fn` as "not yet" (the last one is reported); default true. */
  retryErrors?: boolean;
  /** More context for the failure message (log tails, last state); read only on failure. */
  diagnostics?: () => string;
}

/** What `fn` returns while the condition does not hold yet. */
export type NotYet = undefined | null | false;

export const DEFAULT_WAIT_MS = 20_000;

export async function waitFor<T>(fn: () => T | NotYet | Promise<T | NotYet>, o: WaitOptions): Promise<T> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_WAIT_MS;
  const deadline = performance.now() + timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  for (;;) {
    attempts++;
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      if (o.retryErrors === false) throw err;
      lastError = err;
    }
    const left = deadline - performance.now();
    if (left <= 0) {
      const last = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      const more = o.diagnostics ? `\n${o.diagnostics()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what} (${attempts} attempts${last})${more}`);
    }
    await sleep(Math.min(o.intervalMs ?? 50, left));
  }
}
