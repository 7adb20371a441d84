// Address parsing and TLS material for the relay link.
import fs from 'node:fs';
import net from 'node:net';
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

// The symbols behind net.Socket's `onread` option, taken from a socket made with it.
const onreadSymbols = ((): { buffer: symbol; callback: symbol } | undefined => {
  const probe = new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } });
  const syms = Object.getOwnPropertySymbols(probe);
  const buffer = syms.find((x) => x.description === 'kBuffer');
  const callback = syms.find((x) => x.description === 'kBufferCb');
  probe.destroy();
  return buffer && callback ? { buffer, callback } : undefined;
})();

/**
 * Makes an established socket (plain or TLS) read into `buffer`, reused for every read, as
 * net.Socket's `onread` option does: `onChunk` gets a view valid during the call only, and
 * 'data' is no longer emitted. A 'data' socket allocates a buffer per read (64 KiB for TCP, 16 KiB
 * per TLS record); measured on this machine, reading 300 MB over TLS cost 353-358 ms of CPU and
 * ~19 000 page faults that way, 177-179 ms and ~700 faults into one reused 1 MiB buffer. Sockets
 * made by a server (and every TLS socket that wraps one) cannot be given `onread`, so this sets
 * what the option sets. Returns false, changing nothing, where that is not possible (another Node
 * version, or bytes already buffered in the stream): the caller then keeps 'data'.
 */
export function readIntoBuffer(socket: net.Socket, buffer: Buffer, onChunk: (chunk: Buffer) => void): boolean {
  const inner = socket as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer?: (b: Uint8Array) => void } | null };
  const handle = inner._handle;
  if (!onreadSymbols || typeof handle?.useUserBuffer !== 'function' || socket.readableLength > 0 || socket.destroyed) return false;
  inner[onreadSymbols.buffer] = buffer;
  inner[onreadSymbols.callback] = (n: number, buf: Buffer): boolean => { onChunk(buf.subarray(0, n)); return true; };
  handle.useUserBuffer(buffer);
  return true;
}

/**
 * The accepted (still paused) socket, re-created on the same handle with `onread`: every read
 * lands in `buffer`, reused, and is handed to `onChunk` as a view valid during the call only (the
 * encoder copies what it keeps). A 'data' socket gets a fresh 64 KiB buffer per read instead;
 * measured on this machine, reading 400 MB: 220-280 ms of CPU and ~18 000 page faults with
 * 'data', 60-75 ms and ~200 faults with a reused 1 MiB buffer. net.Server cannot be given
 * `onread`, hence the new Socket on the accepted handle; if the handle is not available (or
 * already reading), the accepted socket is returned unchanged and its 'data' events are used.
 */
export function acceptedWithReadBuffer(accepted: net.Socket, buffer: Buffer, onChunk: (chunk: Buffer) => void): net.Socket {
  const inner = accepted as unknown as { _handle: { reading?: boolean } | null };
  const handle = inner._handle;
  if (!handle || handle.reading || accepted.readableLength > 0 || accepted.destroyed) return accepted;
  inner._handle = null;
  const onread: net.OnReadOpts = { buffer, callback: (n: number, buf: Uint8Array) => { onChunk((buf as Buffer).subarray(0, n)); return true; } };
  const socket = new net.Socket({ handle, allowHalfOpen: true, onread } as unknown as net.SocketConstructorOpts);
  // The server counts the accepted socket among its connections: it goes when this one does.
  socket.once('close', () => accepted.destroy());
  return socket;
}
