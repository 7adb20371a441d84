// Helpers for the relay integration tests: a throw-away CA with relay certificates (openssl), and
// destination servers that hash what they receive and answer on the return path.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { onExit } from '../helpers/exit.ts';

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCert: string;
  rogueKey: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl is required (apt package openssl, installed by hack/setup.sh)');
    throw err;
  }
}

function issue(dir: string, ca: string, name: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

export function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-pki-'));
  // Removed even when the test run is interrupted (SIGINT/SIGTERM/exit).
  const unregister = onExit(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const ca of ['ca', 'rogue-ca']) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', `/CN=${ca}`, '-days', '2'], dir);
  }
  issue(dir, 'ca', 'receiver');
  issue(dir, 'ca', 'sender');
  issue(dir, 'rogue-ca', 'rogue');
  const p = (f: string): string => path.join(dir, f);
  return {
    dir, ca: p('ca.crt'), serverCert: p('receiver.crt'), serverKey: p('receiver.key'), clientCert: p('sender.crt'), clientKey: p('sender.key'),
    rogueCert: p('rogue.crt'), rogueKey: p('rogue.key'),
    cleanup: () => { fs.rmSync(dir, { recursive: true, force: true }); unregister(); },
  };
}

export interface Sink {
  port: number;
  /** Resolves per connection with the sha256 and length of all bytes received, and how it ended. */
  results: Promise<{ hash: string; bytes: number; ended: 'end' | 'reset' }>[];
  server: net.Server;
  close(): Promise<void>;
}

/** A destination: hashes its input; on a clean end it replies "OK <hash>" and closes. */
export async function startSink(expected: number, port = 0): Promise<Sink> {
  const resolvers: ((v: { hash: string; bytes: number; ended: 'end' | 'reset' }) => void)[] = [];
  const results = Array.from({ length: expected }, () => new Promise<{ hash: string; bytes: number; ended: 'end' | 'reset' }>((r) => resolvers.push(r)));
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    const resolve = resolvers[n++] ?? (() => undefined);
    const h = crypto.createHash('sha256');
    let bytes = 0;
    let done = false;
    s.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
    s.on('end', () => {
      done = true;
      const hash = h.digest('hex');
      s.end(`OK ${hash}`);
      resolve({ hash, bytes, ended: 'end' });
    });
    s.on('error', () => undefined);
    s.on('close', () => { sockets.delete(s); if (!done) { done = true; resolve({ hash: h.digest('hex'), bytes, ended: 'reset' }); } });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port, results, server,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Sends `data` to host:port in pieces and collects the return path; resolves when both ends closed. */
export function sendStream(port: number, data: Buffer, piece = 65536): Promise<{ reply: string; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const reply: Buffer[] = [];
    let error: string | undefined;
    s.on('data', (c: Buffer) => reply.push(c));
    s.on('error', (e) => { error = e.message; });
    s.on('close', () => resolve({ reply: Buffer.concat(reply).toString(), error }));
    s.on('connect', async () => {
      for (let off = 0; off < data.length; off += piece) {
        if (!s.write(data.subarray(off, off + piece))) await new Promise((r) => s.once('drain', r));
        if (s.destroyed) return;
      }
      s.end();
    });
  });
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/**
 * A TCP proxy to 127.0.0.1:`port` whose path can be cut silently, as a WAN that drops packets
 * does: `cut()` stops forwarding in both directions and reads nothing more, without a FIN or RST,
 * so each end sees only silence (and, once the buffers fill, writes that never complete).
 */
export async function silentCutProxy(port: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const pairs: [net.Socket, net.Socket][] = [];
  let cut = false;
  const server = net.createServer((down) => {
    down.on('error', () => undefined);
    if (cut) {
      // Accepted by the kernel, then nothing: as a handshake into a black hole.
      down.pause();
      pairs.push([down, down]);
      return;
    }
    const up = net.connect(port, '127.0.0.1');
    up.on('error', () => undefined);
    down.pipe(up);
    up.pipe(down);
    pairs.push([down, up]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      cut = true;
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
    close: () => new Promise<void>((r) => { for (const p of pairs) for (const s of p) s.destroy(); server.close(() => r()); }),
  };
}
