// A `cloudnet relay send` / `cloudnet relay receive` pair as real processes in the two site
// namespaces of the emulated WAN (sender in site A's node namespace, receiver in site B's), mutual
// TLS across the WAN. Session i: QEMU in A connects to 127.0.0.1:<basePort+i> (the sender), and the
// receiver delivers to 127.0.0.1:<basePort+i> in B (the destination QEMU). One pair, one shared
// cache, whatever the number of sessions: the CloudNet multi-VM scenario.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Sites } from '../../test/env/wan.ts';
import { processCpuSeconds } from '../../test/env/wan.ts';
import type { Pki } from '../../test/integration/relay-helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(root, 'node_modules/.bin/node');
const CLI = path.join(root, 'src/cli.ts');

export interface RelayPairOptions {
  sites: Sites;
  pki: Pki;
  sessions: number;
  basePort: number;
  /** Directory for the stats files. */
  dir: string;
  cacheMiB: number;
  /** `auto` (the adaptive default) or a fixed zstd level. */
  level?: string;
  /** The sender's in-flight window (its default when unset). */
  windowMiB?: number;
  /** The sender's --bypass-above-mbit (its default when unset; 0: always relay). */
  bypassAboveMbit?: number;
  /** taskset CPU lists, when pinning. */
  senderCpus?: string;
  receiverCpus?: string;
}

/** One finished session as the relays report it (only the fields the benchmark reads). */
export interface RelaySession {
  bytesIn?: number;
  bytesOut?: number;
  wireBytes?: number;
  mode?: string;
  /** Per pre-copy round: input bytes by the sender's work mode (zstd-3, stored, pass-through...). */
  rounds?: { modes?: Record<string, number> }[];
  techniques?: Record<string, { count: number; rawBytes: number; opBytes: number }>;
  /** DATA frames (batches) the session sent. */
  batches?: number;
  syncLost?: string;
  inputSha256?: string;
  outputSha256?: string;
}

export interface RelayPair {
  readonly pids: readonly number[];
  /**
   * Set when the sender, its link probed, would let a registered migration's flows bypass it
   * (`--bypass-above-mbit`; src/relay/README.md, "Links faster than the relay"). At a site gateway
   * the flows then simply are not redirected; here QEMU dials the relay's static listeners, so the
   * benchmark dials the destination itself, as the gateway would leave it to.
   */
  readonly bypass?: string;
  cpuSeconds(): number;
  /** CPU-seconds of the relays' --hash-streams check (its own worker threads; not relay work). */
  checkCpuSeconds(): number;
  /** Waits until both relays list `n` finished sessions (or the timeout), then returns them. */
  finished(n: number, timeoutMs: number): Promise<{ sender: RelaySession[]; receiver: RelaySession[] }>;
  stop(): Promise<void>;
}

function tail(p: ChildProcess): () => string {
  let buf = '';
  // Always drained: a relay blocked on a full stderr pipe would stall the migration it carries.
  const on = (d: Buffer): void => { buf = (buf + d.toString()).slice(-8000); };
  p.stdout?.on('data', on);
  p.stderr?.on('data', on);
  return () => buf;
}

/** CPU-seconds of the processes so far (a process already gone counts nothing). */
function pidsCpuSeconds(pids: readonly number[]): number {
  return pids.reduce((a, pid) => { try { return a + processCpuSeconds(pid); } catch { return a; } }, 0);
}

/**
 * Waits until the relays are idle: under 10 % of a core over half a second. Deployed relays have
 * long finished their start-up (codec warm-up, V8 compiling, the probe) when a migration comes;
 * here it must not overlap the migration's first round. Measured: idle at the first check (500 ms
 * after the probe) on this machine; the wait is a guard for slower ones. Returns the time waited.
 */
async function settle(pids: readonly number[], maxMs: number): Promise<number> {
  const t0 = Date.now();
  let last = pidsCpuSeconds(pids);
  while (Date.now() - t0 < maxMs) {
    await delay(500);
    const now = pidsCpuSeconds(pids);
    if (now - last < 0.05) break;
    last = now;
  }
  return Date.now() - t0;
}

/** The sender's stats once written after the link probe (they then name the probe), or undefined. */
async function statsAfterProbe(file: string, ms: number): Promise<{ flowBypass?: string } | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { link?: { probe?: unknown }; flowBypass?: string };
      if (j.link?.probe) return j;
    } catch { /* not written yet */ }
    await delay(200);
  }
  return undefined;
}

async function waitReady(p: ChildProcess, logTail: () => string, re: RegExp, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(logTail())) {
    if (p.exitCode !== null || p.signalCode !== null) throw new Error(`relay exited (${p.exitCode ?? p.signalCode}): ${logTail().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`relay not ready within ${ms} ms: ${logTail().slice(-2000)}`);
    await delay(100);
  }
}

function readFinished(file: string): RelaySession[] {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { finished?: RelaySession[] }).finished ?? [];
  } catch {
    return []; // not written yet
  }
}

function readCheckCpu(file: string): number {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { streamHashCpuSeconds?: number }).streamHashCpuSeconds ?? 0;
  } catch {
    return 0;
  }
}

export async function startRelayPair(o: RelayPairOptions): Promise<RelayPair> {
  const { sites, pki } = o;
  const env = { ...process.env, LOG_LEVEL: 'info' };
  const pinned = (cpus: string | undefined, args: string[]): [string, string[]] => (cpus ? ['taskset', ['-c', cpus, NODE, ...args]] : [NODE, args]);
  const ids = Array.from({ length: o.sessions }, (_, i) => i);
  const recvStats = path.join(o.dir, 'relay-receive.json');
  const sendStats = path.join(o.dir, 'relay-send.json');
  for (const f of [recvStats, sendStats]) fs.rmSync(f, { force: true });
  // The byte-exact check copies each stream into 1 GiB set aside at start-up and hashes it when
  // the session is over, so that the relay cells' time carries ~10 ms of copying per 150 MB
  // instead of ~85 ms of SHA-256 on each side: production relays run no check at all.
  const common = ['--cache-mb', String(o.cacheMiB), '--hash-streams', '--hash-streams-buffer-mb', '1024'];
  const [rxCmd, rxArgs] = pinned(o.receiverCpus, [CLI, 'relay', 'receive', '--listen', `${sites.b.nodeIp}:7400`,
    ...ids.flatMap((i) => ['--target', `vm${i}=127.0.0.1:${o.basePort + i}`]),
    '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey, ...common, '--stats-file', recvStats]);
  const procs: ChildProcess[] = [];
  let bypass: string | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }));
  };
  try {
    const rx = sites.spawn(sites.b.nodeNs, rxCmd, rxArgs, { env });
    procs.push(rx);
    await waitReady(rx, tail(rx), /relay receiver ready/, 30_000);
    const [txCmd, txArgs] = pinned(o.senderCpus, [CLI, 'relay', 'send', ...ids.flatMap((i) => ['--listen', `127.0.0.1:${o.basePort + i}/vm${i}`]),
      '--peer', `${sites.b.nodeIp}:7400`, '--servername', 'localhost', '--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey,
      ...common, ...(o.level && o.level !== 'auto' ? ['--level', o.level] : []), ...(o.windowMiB ? ['--window-mb', String(o.windowMiB)] : []),
      ...(o.bypassAboveMbit !== undefined ? ['--bypass-above-mbit', String(o.bypassAboveMbit)] : []), '--stats-file', sendStats]);
    const tx = sites.spawn(sites.a.nodeNs, txCmd, txArgs, { env });
    procs.push(tx);
    // One log tail from the start: the probe's line may come before the ready line is seen.
    const txLog = tail(tx);
    await waitReady(tx, txLog, /relay sender ready/, 30_000);
    // As deployed, the relays run long before a migration: the link (and both caches) are up,
    // and the link probed, when QEMU connects.
    await waitReady(tx, txLog, /relay link probe/, 30_000);
    const probe = /\{[^\n]*relay link probe[^\n]*\}/.exec(txLog())?.[0];
    if (probe) console.log(`[relay-pair] ${probe}`);
    // The stats file (rewritten every second) then carries the sender's bypass decision.
    bypass = (await statsAfterProbe(sendStats, 5000))?.flowBypass;
    const settledMs = await settle(procs.map((p) => p.pid ?? -1), 10_000);
    console.log(`[relay-pair] relays idle ${settledMs} ms after the probe`);
  } catch (err) {
    await stop();
    throw err;
  }
  const pids = procs.map((p) => p.pid ?? -1);
  return {
    pids,
    ...(bypass ? { bypass } : {}),
    cpuSeconds: () => pidsCpuSeconds(pids),
    checkCpuSeconds: () => [sendStats, recvStats].reduce((a, f) => a + readCheckCpu(f), 0),
    async finished(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const sender = readFinished(sendStats);
        const receiver = readFinished(recvStats);
        if ((sender.length >= n && receiver.length >= n) || Date.now() > deadline) return { sender, receiver };
        await delay(250);
      }
    },
    stop,
  };
}
