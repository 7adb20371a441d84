// Free loopback TCP ports for test servers that take their port on the command line (etcd,
// kube-apiserver, the relay and agent CLIs). Where a server can listen on port 0 and report the
// port it got, that is better still (the sinks in test/integration/relay-helpers.ts do).
//
// Two races are closed, not just made unlikely:
// - the kernel's: ports come from below Linux's ephemeral range (32768+), so an outgoing
//   connection (kube-apiserver's to etcd, any client's) is never given one between our check and
//   the server's bind, as happens to a port found by binding port 0 and closing;
// - other test processes' (node --test runs files in parallel): a port is claimed with a file
//   `<port>.<pid>` in a directory all test processes share, and is ours only if no other live
//   process holds a claim on it after ours exists. Two processes claiming at once both see each
//   other and both move on, so at most one wins. Claims last until the process exits; those of
//   dead processes are ignored and removed.
// What remains is a program outside the tests binding the same port explicitly: the bind check
// skips ports in use, and a server that still loses fails to bind (startCluster retries).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit, pidAlive } from './exit.ts';

const LOW = 20000;
const HIGH = 32000;
/** Where claims live; one directory a user (one made by root would not be writable by others). */
export const CLAIMS_DIR = join(tmpdir(), `cloudnet-test-ports-${process.getuid?.() ?? 'any'}`);
/** Ports this process holds a claim on (until it exits). */
const mine = new Set<number>();

/** Whether a live process other than this one claims `port`; claims of dead processes are removed. */
function claimedByOthers(port: number): boolean {
  let claimed = false;
  for (const name of readdirSync(CLAIMS_DIR)) {
    const [p, pid] = name.split('.').map(Number);
    if (p !== port || pid === process.pid) continue;
    if (pidAlive(pid)) claimed = true;
    else rmSync(join(CLAIMS_DIR, name), { force: true });
  }
  return claimed;
}

let exitHook = false;
function releaseAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  // A SIGKILLed process leaves its claims behind; claimedByOthers reclaims them.
  onExit(() => {
    for (const port of mine) rmSync(join(CLAIMS_DIR, `${port}.${process.pid}`), { force: true });
  });
}

/** Claims `port` for this process against the other test processes; false if a live one holds it. */
export function claimPort(port: number): boolean {
  if (mine.has(port)) return true;
  mkdirSync(CLAIMS_DIR, { recursive: true });
  releaseAtExit();
  const file = join(CLAIMS_DIR, `${port}.${process.pid}`);
  writeFileSync(file, '');
  if (claimedByOthers(port)) {
    rmSync(file, { force: true });
    return false;
  }
  mine.add(port);
  return true;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A loopback port no other test process holds and nothing was bound to a moment ago; never handed out twice. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    // A port handed out before stays claimed (the server may not have bound it yet).
    if (mine.has(port) || !claimPort(port)) continue;
    if (await canBind(port)) return port;
    // In use outside the scheme: the claim stays, so it is not picked again.
  }
  throw new Error(`no free loopback port found in ${LOW}-${HIGH}`);
}
