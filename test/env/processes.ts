// Child processes that must never outlive the test process. Each server runs in its own process
// group (so a kill reaches anything it forks), and three layers clean up:
//   1. stop()/restart paths kill and await each group;
//   2. 'exit', SIGINT and SIGTERM hooks kill every live group and remove every registered dir
//      synchronously, for tests that crash or forget to stop;
//   3. a detached shell watchdog per owner polls this process's pid and, if it dies by SIGKILL
//      (no hook runs then), kills the groups named in the owner's *.pid files and removes its dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onExit } from '../helpers/exit.ts';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
  /** Kills the whole process group and waits for the leader to exit. */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const liveGroups = new Set<number>();
const ownedDirs = new Set<string>();
let hooksInstalled = false;

function killGroupSync(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

function cleanupSync(): void {
  for (const pgid of liveGroups) killGroupSync(pgid, 'SIGKILL');
  liveGroups.clear();
  for (const dir of ownedDirs) rmSync(dir, { recursive: true, force: true });
  ownedDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  onExit(cleanupSync);
}

/** Registers a directory to be removed by the exit hooks if its owner never cleans up. */
export function ownDir(dir: string): void {
  installHooks();
  ownedDirs.add(dir);
}

export function releaseDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  ownedDirs.delete(dir);
}

/**
 * Starts `bin` in a new process group with output appended to `<dir>/<name>.log`, and records its
 * pid in `<dir>/<name>.pid` for the watchdog.
 */
export function startProcess(dir: string, name: string, bin: string, args: string[]): ManagedProcess {
  installHooks();
  const logPath = join(dir, `${name}.log`);
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${bin} (is it built? see hack/build-k8s-binaries.sh)`);
  const pid = child.pid;
  liveGroups.add(pid);
  writeFileSync(join(dir, `${name}.pid`), String(pid));
  // The exit hooks own the lifetime of this child; it must not keep the event loop alive.
  child.unref();
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      done = true;
      liveGroups.delete(pid);
      resolve(code);
    });
    child.once('error', () => {
      done = true;
      liveGroups.delete(pid);
      resolve(null);
    });
  });
  return {
    name,
    pid,
    logPath,
    exited,
    hasExited: () => done,
    async kill(signal: NodeJS.Signals = 'SIGKILL', graceMs = 5000) {
      if (done) return;
      // Hold the event loop open until the exit is observed (the child is unref'd otherwise).
      child.ref();
      killGroupSync(pid, signal);
      if (signal !== 'SIGKILL') {
        const timer = setTimeout(() => killGroupSync(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      } else {
        await exited;
      }
      // Anything the leader forked dies with the group too.
      killGroupSync(pid, 'SIGKILL');
    },
  };
}

/**
 * A detached shell that outlives a SIGKILLed test process: once this process is gone it kills
 * every group listed in `<dir>/*.pid` and removes `dir`. Returns a function that stops it.
 */
export function startWatchdog(dir: string): () => void {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'for f in "$2"/*.pid; do [ -f "$f" ] && kill -s KILL -- "-$(cat "$f")" 2>/dev/null; done',
    'rm -rf -- "$2"',
  ].join('\n');
  const child = spawn('sh', ['-c', script, 'cloudnet-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  const pid = child.pid;
  if (pid !== undefined) liveGroups.add(pid);
  return () => {
    if (pid === undefined) return;
    killGroupSync(pid, 'SIGKILL');
    liveGroups.delete(pid);
  };
}

/** Last lines of a log file, for error messages. */
export function tailFile(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
