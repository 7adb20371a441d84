// Address parsing and TLS material for the relay link.
import fs from 'node:fs';
import type tls from 'node:tls';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(s: string, defaultHost = '127.0.0.1'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s) ?? /^()()(\d+)$/.exec(s);
  if (!m) throw new Error(`expected HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[3]);
  if (!(port >= 0 && port < 65536)) throw new Error(`bad port in ${s}`);
  return { host: m[1] || m[2] || defaultHost, port };
}

/**
 * Link security between the relays: mutually authenticated TLS (both sides present a
 * certificate signed by the shared CA), or plain TCP only when the operator states the hop runs
 * inside the WireGuard tunnel.
 */
export type LinkSecurity =
  | { kind: 'tls'; ca: Buffer; cert: Buffer; key: Buffer; servername?: string }
  | { kind: 'plain-inside-wireguard' };

export function loadTls(caFile: string, certFile: string, keyFile: string, servername?: string): LinkSecurity {
  return { kind: 'tls', ca: fs.readFileSync(caFile), cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), servername };
}

export function tlsServerOptions(sec: Extract<LinkSecurity, { kind: 'tls' }>): tls.TlsOptions {
  return { ca: sec.ca, cert: sec.cert, key: sec.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' };
}

export function tlsClientOptions(sec: Extract<LinkSecurity, { kind: 'tls' }>): tls.ConnectionOptions {
  return { ca: sec.ca, cert: sec.cert, key: sec.key, rejectUnauthorized: true, minVersion: 'TLSv1.3', servername: sec.servername };
}
