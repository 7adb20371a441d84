// Polls a synchronous condition (e.g. an informer's cache or a manager's leader flag) until it
// holds, failing with what was awaited once the timeout passes.
export async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
