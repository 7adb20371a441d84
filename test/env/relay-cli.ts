// The relay CLI (`cloudnet relay send|receive`) as a child process, for the beds that run a real
// relay pair: on loopback (relay.test.ts, relay-progress-helpers.ts) or inside a site's namespace
// through Sites.spawn (relay-wan.test.ts, test/e2e/wan-bed.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit } from '../helpers/exit.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NODE = join(repoRoot, 'node_modules/.bin/node');
export const CLI = join(repoRoot, 'src/cli.ts');

/**
 * `cloudnet relay <args>` on loopback. Its log (warnings and up; info with RELAY_TEST_DEBUG set)
 * goes to the test's stderr prefixed with the subcommand, and it is killed if the test process dies.
 */
export function startRelayCli(args: string[]): ChildProcess {
  const p = spawn(NODE, [CLI, 'relay', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: process.env.RELAY_TEST_DEBUG ? 'info' : 'warn' },
  });
  p.stderr!.on('data', (c: Buffer) => process.stderr.write(`[relay ${args[0]}] ${c}`));
  const unregister = onExit(() => p.kill('SIGKILL')); // also when the test run is interrupted
  p.once('exit', unregister);
  return p;
}

/**
 * Resolves once `p` logs a line matching `re` on stderr (the relays log "relay sender ready" and
 * "relay receiver ready"); rejects with the log tail if it exits first or `ms` passes. Afterwards
 * the stream keeps flowing (removing the listener does not pause it), so the relay never blocks
 * on a full pipe; a caller that wants the rest of the log pipes it somewhere.
 */
export function waitForLog(p: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolveReady, reject) => {
    let buf = '';
    const done = (err?: Error): void => {
      clearTimeout(timer);
      p.stderr!.off('data', onData);
      p.off('exit', onExit);
      if (err) reject(err);
      else resolveReady();
    };
    const onData = (c: Buffer): void => {
      buf += c.toString();
      if (re.test(buf)) done();
    };
    const onExit = (code: number | null): void => done(new Error(`exited (${code}) before logging ${re}: ${buf.slice(-2000)}`));
    const timer = setTimeout(() => done(new Error(`no ${re} within ${ms} ms; output: ${buf.slice(-2000)}`)), ms);
    p.stderr!.on('data', onData);
    p.once('exit', onExit);
  });
}
