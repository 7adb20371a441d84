// Exit hooks of the test beds: synchronous cleanups (kill helper processes, delete namespaces,
// remove temp dirs) that run when the test process exits, also on SIGINT/SIGTERM, so nothing a
// crashed or interrupted test started outlives it. SIGKILL runs no hook: the watchdogs of
// processes.ts and the pid-tagged names of netns.ts and the port claims cover that case, with
// pidAlive() telling which owners are gone.
const callbacks = new Set<() => void>();
let installed = false;

function runAll(): void {
  for (const cb of [...callbacks]) {
    try {
      cb();
    } catch {
      // best effort at exit
    }
  }
  callbacks.clear();
}

/** Whether a process with this pid exists (one we may not signal counts). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Registers a synchronous cleanup run at process exit or on SIGINT/SIGTERM; returns an unregister function. */
export function onExit(cb: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.once(sig, () => {
        runAll();
        // Another module's handler may exit with its own code; if none is left, exit here.
        if (process.listenerCount(sig) === 0) process.exit(code);
      });
    }
  }
  callbacks.add(cb);
  return () => callbacks.delete(cb);
}
