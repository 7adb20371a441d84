// Network namespaces for test sites, and running commands inside them.
//
// Names are `cnw-<pid>-<rand>-<role>`: unique per test run (parallel test files never collide) and
// tagged with the owning pid, so namespaces left behind by a SIGKILLed test process can be swept
// by the next run. Interface names live inside the namespaces and so need no uniqueness at all.
// Cleanup is layered: destroy() in the test, then the synchronous exit hooks of exit.ts.
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { onExit, pidAlive } from '../helpers/exit.ts';

export const NETNS_PREFIX = 'cnw-';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Resolve with the result instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin (then closed), e.g. a private key, so it never hits argv or disk. */
  input?: string;
}

/** Runs a command to completion; rejects with its stderr on failure unless allowFail. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && !opts.allowFail) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr.trim() || err.message}`));
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
    // A command may exit without reading its stdin; that EPIPE is not the command's failure.
    child.stdin?.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Throws an error naming the tool and its Debian package when a required binary is missing. */
export function requireTool(tool: string, debianPackage: string): string {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  throw new Error(`required tool '${tool}' not found: install the Debian package ${debianPackage} (hack/setup.sh does)`);
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('network namespace tests must run as root (ip netns needs CAP_SYS_ADMIN)');
}

/** A fresh, short run id: `<pid>-<4 hex>`. */
export function newRunId(): string {
  return `${process.pid}-${randomBytes(2).toString('hex')}`;
}

export function netnsName(runId: string, role: string): string {
  return `${NETNS_PREFIX}${runId}-${role}`;
}

/** Runs a command inside a namespace (ip netns exec) to completion. */
export function nsExec(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** Starts a command inside a namespace as a child process; `ip netns exec` execs it, so the pid is the command's. */
export function nsSpawn(ns: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Names of all network namespaces on the machine. */
export function listNetns(): string[] {
  try {
    return readdirSync('/var/run/netns');
  } catch {
    return [];
  }
}

export async function addNetns(name: string): Promise<void> {
  hookNamespaces();
  ownedNamespaces.add(name);
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Kills every process inside the namespace, then deletes it. Idempotent. */
export function deleteNetnsSync(name: string): void {
  if (!listNetns().includes(name)) {
    ownedNamespaces.delete(name);
    return;
  }
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) killQuietly(Number(pid), 'SIGKILL');
  } catch {
    // namespace vanished meanwhile
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  ownedNamespaces.delete(name);
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGTERM'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Deletes `cnw-<pid>-…` namespaces whose owning process is gone (left by a SIGKILLed run). */
export function sweepStaleNetns(): string[] {
  const swept: string[] = [];
  for (const ns of listNetns()) {
    const m = /^cnw-(\d+)-/.exec(ns);
    if (m && !pidAlive(Number(m[1]))) {
      deleteNetnsSync(ns);
      swept.push(ns);
    }
  }
  return swept;
}

// ---- namespaces must not outlive a crashed test: the exit hooks (exit.ts) delete what is left ----

const ownedNamespaces = new Set<string>();
let namespacesHooked = false;

function hookNamespaces(): void {
  if (namespacesHooked) return;
  namespacesHooked = true;
  onExit(() => {
    for (const ns of [...ownedNamespaces]) deleteNetnsSync(ns);
  });
}
