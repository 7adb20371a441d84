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

/** An IPv4 network: address and prefix mask as 32-bit numbers. */
export interface Cidr4 { net: number; mask: number; text: string }

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return undefined;
  return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
}

export function parseCidr(s: string): Cidr4 {
  const [addr, len = '32'] = s.split('/');
  const a = ipv4(addr);
  const n = Number(len);
  if (a === undefined || !Number.isInteger(n) || n < 0 || n > 32 || !/^\d+$/.test(len)) throw new Error(`expected an IPv4 CIDR, got ${JSON.stringify(s)}`);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  return { net: (a & mask) >>> 0, mask, text: s };
}

/** Is the IPv4 address `host` inside one of `cidrs`? */
export function inCidrs(host: string, cidrs: readonly Cidr4[]): boolean {
  const a = ipv4(host);
  return a !== undefined && cidrs.some((c) => ((a & c.mask) >>> 0) === c.net);
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
