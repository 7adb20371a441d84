// A real relay pair for the progress reader's tests: `cloudnet relay receive` forwarding to a
// destination port, and `cloudnet relay send` with one listener (`mem`) and its HTTP stats, plain
// TCP on loopback (--plain-inside-wireguard: the reader does not care how the link is secured).
import net from 'node:net';
import { startRelayCli } from '../env/relay-cli.ts';
import { waitFor } from '../helpers/poll.ts';
import { freePort } from '../helpers/ports.ts';

export interface RelayPair {
  /** The sender's `mem` listener: where a migration stream goes in. */
  sendPort: number;
  statsUrl: string;
  stop(): Promise<void>;
}

export async function startRelayPair(destinationPort: number): Promise<RelayPair> {
  const [recvPort, sendPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const procs = [
    startRelayCli(['receive', '--listen', `127.0.0.1:${recvPort}`, '--target', `mem=127.0.0.1:${destinationPort}`, '--plain-inside-wireguard', '--cache-mb', '32']),
    startRelayCli(['send', '--listen', `127.0.0.1:${sendPort}/mem`, '--peer', `127.0.0.1:${recvPort}`, '--plain-inside-wireguard',
      '--cache-mb', '32', '--level', '3', '--stats', `127.0.0.1:${statsPort}`]),
  ];
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) p.kill('SIGTERM'); // the sender first: no "link lost" noise
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  };
  const statsUrl = `http://127.0.0.1:${statsPort}`;
  // The stats endpoint answers once the sender runs (probing its listener would open a session).
  await waitFor(async () => (await fetch(`${statsUrl}/stats`)).ok, { what: 'the sender relay\'s stats endpoint', intervalMs: 100 })
    .catch(async (err: unknown) => { await stop(); throw err; });
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
