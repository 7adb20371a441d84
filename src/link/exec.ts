// Runs the host tools the link needs (ip, wg). Secrets travel on stdin only: argv is visible to
// every process on the host (/proc/*/cmdline), so `input` is never echoed into error messages.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  readonly code: number | null;
  readonly stderr: string;
  constructor(cmd: string, args: readonly string[], code: number | null, stderr: string) {
    super(`${cmd} ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`);
    this.code = code;
    this.stderr = stderr;
  }
}

export interface RunOptions {
  /** Written to the child's stdin (e.g. a private key for `wg set … private-key /dev/stdin`). */
  input?: string;
  timeoutMs?: number;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 15_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new Error(`${cmd} not found on PATH (install it: see hack/setup.sh)`) : e);
    });
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new CommandError(cmd, args, code, Buffer.concat(err).toString('utf8')));
    });
    child.stdin.on('error', () => { /* child exited before reading stdin; the exit code tells */ });
    child.stdin.end(opts.input ?? '');
  });
}
