// A real relay pair for the progress reader's tests: `cloudnet relay receive` forwarding to a
// destination port, and `cloudnet relay send` with one listener (`mem`) and its HTTP stats, plain
// TCP on loopback (--plain-inside-wireguard: the reader does not care how the link is secured).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { onExit } from '../env/netns.ts';
import { freePort } from './relay-helpers.ts';

const NODE = 'node_modules/.bin/node';

function startRelay(args: string[]): ChildProcess {
  const p = spawn(NODE, ['src/cli.ts', 'relay', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  p.stderr!.on('data', (c: Buffer) => process.stderr.write(`[relay ${args[0]}] ${c}`));
  const unregister = onExit(() => p.kill('SIGKILL')); // also when the test run is interrupted
  p.once('exit', unregister);
  return p;
}

export interface RelayPair {
  /** The sender's `mem` listener: where a migration stream goes in. */
  sendPort: number;
  statsUrl: string;
  stop(): Promise<void>;
}

export async function startRelayPair(destinationPort: number): Promise<RelayPair> {
  const [recvPort, sendPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const procs = [
    startRelay(['receive', '--listen', `127.0.0.1:${recvPort}`, '--target', `mem=127.0.0.1:${destinationPort}`, '--plain-inside-wireguard', '--cache-mb', '32']),
    startRelay(['send', '--listen', `127.0.0.1:${sendPort}/mem`, '--peer', `127.0.0.1:${recvPort}`, '--plain-inside-wireguard',
      '--cache-mb', '32', '--level', '3', '--stats', `127.0.0.1:${statsPort}`]),
  ];
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) p.kill('SIGTERM'); // the sender first: no "link lost" noise
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  };
  const statsUrl = `http://127.0.0.1:${statsPort}`;
  // The stats endpoint answers once the sender runs (probing its listener would open a session).
  const deadline = Date.now() + 20_000;
  while (!(await fetch(`${statsUrl}/stats`).catch(() => undefined))?.ok) {
    if (Date.now() > deadline) { await stop(); throw new Error('the sender relay\'s stats endpoint never answered'); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { sendPort, statsUrl, stop };
}

export interface MigrationStream {
  socket: net.Socket;
  write(b: Buffer): Promise<void>;
  end(): void;
}

/** A migration stream into the relay's listener, written in parts and ended on request. */
export async function openStream(port: number): Promise<MigrationStream> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  s.on('error', () => undefined);
  return {
    socket: s,
    write: (b) => new Promise<void>((resolve) => { if (s.write(b)) resolve(); else s.once('drain', () => resolve()); }),
    end: () => s.end(),
  };
}
