// A real relay pair for the relay provider's tests: `cloudnet relay receive` delivering flows to
// their original destinations on loopback, and `cloudnet relay send` with its registration API on a
// unix socket (plain TCP between them, --plain-inside-wireguard: the provider does not care how the
// link is secured). No gateway here: a test stands in for the redirect by connecting to the local
// port the sender opened for a registered flow.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RelayApiClient } from '../../src/operator/relay-client/api-client.ts';
import { startRelayCli } from '../env/relay-cli.ts';
import { waitFor } from '../helpers/poll.ts';
import { freePort } from '../helpers/ports.ts';

export interface RelayPair {
  /** The sender's registration API: unix://PATH. */
  apiUrl: string;
  token: string;
  api: RelayApiClient;
  /** The local port of a registered flow's destination (what the gateway would redirect to). */
  flowPort(destination: string): Promise<number>;
  stop(): Promise<void>;
}

/** The sender's policy: a fixed zstd level (default 3), or 'auto' with a bypass threshold. */
export interface RelayPairOptions {
  level?: string;
  bypassAboveMbit?: number;
}

export async function startRelayPair(o: RelayPairOptions = {}): Promise<RelayPair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-api-'));
  const token = randomBytes(24).toString('hex');
  fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
  const sock = path.join(dir, 'api.sock');
  const recvPort = await freePort();
  const procs = [
    startRelayCli(['receive', '--listen', `127.0.0.1:${recvPort}`, '--allow-destination', '127.0.0.0/8', '--plain-inside-wireguard', '--cache-mb', '32']),
    startRelayCli(['send', '--peer', `127.0.0.1:${recvPort}`, '--plain-inside-wireguard', '--cache-mb', '32', '--level', o.level ?? '3',
      ...(o.bypassAboveMbit !== undefined ? ['--bypass-above-mbit', String(o.bypassAboveMbit)] : []), '--api', `unix:${sock}`, '--api-token-file', path.join(dir, 'token'), '--flow-listen', '127.0.0.1']),
  ];
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) p.kill('SIGTERM'); // the sender first: no "link lost" noise
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const apiUrl = `unix://${sock}`;
  const api = new RelayApiClient({ url: apiUrl, token });
  await waitFor(() => api.registrations().then(() => true, () => false), { what: 'the sender relay\'s API', intervalMs: 100 })
    .catch(async (err: unknown) => { await stop(); throw err; });
  const flowPort = async (destination: string): Promise<number> => {
    for (const r of await api.registrations()) for (const f of r.flows) if (f.destination === destination) return f.localPort;
    throw new Error(`no registered flow to ${destination}`);
  };
  return { apiUrl, token, api, flowPort, stop };
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
