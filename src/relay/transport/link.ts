// One connection between a sender relay and a receiver relay: frame I/O and the version/cache
// handshake. The sender opens it; the receiver accepts it. Each direction is one checked frame
// stream (frames.ts): the first frame (HELLO, or the CLOSE that refuses the link) in the
// version-independent envelope, then every frame with the chained CRC. A frame that fails its
// check closes the link (`failure` says why); frames before it were intact and are delivered.
import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { F } from '../codec/index.ts';
import type { HostPort, LinkSecurity } from './net-util.ts';
import { readIntoBuffer, tlsClientOptions } from './net-util.ts';

/**
 * How long a link may hear nothing from its peer before it counts as cut (see closeWhenSilent).
 * The sender keeps the link busy with a keepalive every keepaliveIntervalMs(timeout), so silence
 * means the path is gone, not idle.
 */
export const DEFAULT_LINK_TIMEOUT_MS = 15_000;

/** How often, for a link timeout of `timeoutMs`, the sender sends a keepalive and each side looks for silence. */
export function keepaliveIntervalMs(timeoutMs: number): number {
  return Math.max(20, Math.min(1000, timeoutMs / 4));
}
/** A PROBE whose sequence number has this bit set is a keepalive, not part of the link probe. */
export const KEEPALIVE_SEQ_BIT = 0x8000_0000;

/** Frames from this size on are written as header + payload (no copy). */
const LARGE_FRAME = 16 << 10;
/** The read buffer of a link whose frame buffers are reused (the receiver's). */
const LINK_READ_BUF = 256 << 10;

export class Link extends EventEmitter<{ frame: [F.Frame]; close: [string]; drain: [] }> {
  readonly socket: net.Socket;
  private readonly reader: F.FrameReader;
  /** Frame payloads are views into a reused buffer, valid during the frame handler only. */
  private readonly reuse: boolean;
  /** Public for tests that put raw (half or damaged) frames on the socket. */
  readonly writer = new F.FrameWriter();
  private queued: F.Frame[] = [];
  closed = false;
  /** Why the incoming stream is unusable, if it failed a check (damaged, lost or repeated frame). */
  failure: F.FrameError | undefined;
  bytesOut = 0;
  bytesIn = 0;
  private lastHeardAt = performance.now();
  private silenceTimer: NodeJS.Timeout | undefined;

  /**
   * reuseFrameBuffers: frames spread over several socket reads are joined in a reused buffer
   * instead of a new one each (a 512 KiB batch arrives in ~30 TLS records: one allocation per
   * batch, a large share of the receiver's garbage collection). Only for a side whose frame
   * handler keeps no payload beyond its call (the receiver; the sender forwards return-path
   * payloads to a socket, which keeps them).
   */
  constructor(socket: net.Socket, opts: { reuseFrameBuffers?: boolean } = {}) {
    super();
    this.socket = socket;
    this.reuse = opts.reuseFrameBuffers ?? false;
    socket.setNoDelay(true);
    // With reused frame buffers, the socket's reads land in one reused buffer too (the reader
    // copies what it keeps of each): no allocation per read.
    const borrowed = this.reuse && readIntoBuffer(socket, Buffer.allocUnsafeSlow(LINK_READ_BUF), (chunk) => this.onData(chunk));
    this.reader = new F.FrameReader({ reuse: this.reuse, borrowed });
    if (!borrowed) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (borrowed) socket.resume(); // flowing, without a 'data' listener: 'end' is still emitted
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (err) => this.close(`link error: ${err.message}`));
    socket.on('close', () => this.close(this.cut('link closed')));
    socket.on('end', () => this.close(this.cut('link ended by peer')));
  }

  private onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    this.lastHeardAt = performance.now();
    const { frames, error } = this.reader.read(chunk);
    for (const f of frames) {
      if (this.closed) return;
      // Frames that arrive right behind the HELLO, before the session handler is attached,
      // wait in a queue instead of being dropped.
      if (this.listenerCount('frame') === 0) this.queued.push(this.reuse ? { ...f, payload: Buffer.from(f.payload) } : f);
      else this.emit('frame', f);
    }
    if (error && !this.closed) {
      this.failure = error;
      this.close(`protocol error: ${error.message}`);
    }
  }

  /** Attaches the long-lived frame handler and hands it any frames that arrived before. */
  attach(handler: (f: F.Frame) => void): void {
    this.on('frame', handler);
    const q = this.queued;
    this.queued = [];
    for (const f of q) if (!this.closed) handler(f);
  }

  send(type: number, session: number, payload?: Buffer): boolean {
    if (this.closed) return false;
    // Header and payload in one writev: a batch is not copied again into a framed buffer.
    if (payload && payload.length >= LARGE_FRAME) return this.sendParts(type, session, [payload]);
    const f = this.writer.frame(type, session, payload);
    this.bytesOut += f.length;
    return this.socket.write(f);
  }

  /**
   * A frame whose payload is given in parts (e.g. a batch's header and its ops), written with the
   * frame header in one writev: nothing is copied into a packed frame. The parts must stay
   * unchanged until `onWritten` runs (the socket has taken them); then their buffers may be reused.
   */
  sendParts(type: number, session: number, parts: readonly Buffer[], onWritten?: () => void): boolean {
    if (this.closed) return false;
    const h = this.writer.header(type, session, parts);
    let n = h.length;
    this.socket.cork();
    this.socket.write(h);
    let ok = true;
    for (let i = 0; i < parts.length; i++) {
      n += parts[i].length;
      ok = this.socket.write(parts[i], i === parts.length - 1 && onWritten ? () => onWritten() : undefined);
    }
    this.socket.uncork();
    this.bytesOut += n;
    return ok;
  }

  sendJson(type: number, session: number, value: object): boolean {
    return this.send(type, session, Buffer.from(JSON.stringify(value)));
  }

  get backlog(): number {
    return this.socket.writableLength;
  }

  /** The link ended: if it stopped inside a frame, that is a failure too. */
  private cut(why: string): string {
    const err = this.closed ? undefined : this.reader.end();
    if (!err) return why;
    this.failure ??= err;
    return `${why}: ${err.message}`;
  }

  /**
   * Closes the link once nothing at all has arrived from the peer for `ms` (0: never). A WAN cut
   * that drops packets without a FIN or RST leaves TCP retransmitting for up to ~15 minutes, and
   * the sessions with it: the migration connection to the source QEMU would stay open and stuck,
   * and a source in its stop-and-copy phase stays paused until that connection fails. Closing
   * the link aborts its sessions at both ends (reason peer-lost): QEMU sees a reset, fails the
   * migration and goes on running the guest. Idempotent.
   */
  closeWhenSilent(ms: number): void {
    if (this.silenceTimer || this.closed || !(ms > 0)) return;
    this.lastHeardAt = performance.now();
    const verdict = (): void => {
      const quiet = performance.now() - this.lastHeardAt;
      if (quiet > ms) this.close(`nothing from the peer relay for ${(quiet / 1000).toFixed(1)} s (the path is cut or the peer hangs)`);
    };
    this.silenceTimer = setInterval(() => {
      // Timers run before the event loop polls the sockets: after a stall of this process, bytes
      // that arrived meanwhile are still unread. Decide only after the next poll has read them.
      if (performance.now() - this.lastHeardAt > ms) setImmediate(verdict);
    }, keepaliveIntervalMs(ms));
    this.silenceTimer.unref();
  }

  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.silenceTimer) clearInterval(this.silenceTimer);
    this.socket.destroy();
    this.emit('close', why);
  }
}

/** How long connecting to the receiver (TCP and TLS handshakes) may take before it is retried. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects to the receiver. Bounded: across a path that drops packets, a connect would otherwise
 * wait for the kernel's SYN retries (~2 minutes), and a sender reconnecting after a cut would
 * come back that late once the path is restored.
 */
export function connectLink(peer: HostPort, security: LinkSecurity, timeoutMs = CONNECT_TIMEOUT_MS): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let s: net.Socket;
    const onErr = (err: Error): void => { clearTimeout(timer); reject(err); };
    const connected = (): void => {
      clearTimeout(timer);
      s.off('error', onErr);
      resolve(s);
    };
    if (security.kind === 'tls') {
      s = tls.connect({ host: peer.host, port: peer.port, ...tlsClientOptions(security), servername: security.servername ?? (net.isIP(peer.host) ? undefined : peer.host) }, connected);
    } else {
      s = net.connect(peer.port, peer.host, connected);
    }
    const timer = setTimeout(() => s.destroy(new Error(`connecting to the receiver relay at ${peer.host}:${peer.port} timed out after ${timeoutMs / 1000} s`)), timeoutMs);
    timer.unref();
    s.once('error', onErr);
  });
}

/** Handshake failure of a relay link: closes every session that was going to use it. */
export class HandshakeError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Waits for the peer's HELLO and validates it. */
export function awaitHello(link: Link, timeoutMs = 10_000): Promise<F.Hello> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new HandshakeError('timeout', 'no HELLO from the peer relay')); }, timeoutMs);
    const onFrame = (f: F.Frame): void => {
      cleanup();
      if (f.type === F.F_CLOSE) {
        const c = safeJson<F.CloseInfo>(f.payload);
        reject(new HandshakeError(c?.reason ?? 'refused', `peer refused the link: ${c?.message ?? 'no reason'}`));
        return;
      }
      const h = f.type === F.F_HELLO ? safeJson<F.Hello>(f.payload) : undefined;
      if (!h || h.magic !== 'cloudnet-relay') { reject(new HandshakeError('protocol', 'peer is not a cloudnet relay')); return; }
      if (h.version !== F.PROTOCOL_VERSION) {
        reject(new HandshakeError('version', `relay protocol version mismatch: peer ${h.version}, local ${F.PROTOCOL_VERSION} (both relays of a pair must run the same protocol version)`));
        return;
      }
      if (!(h.cacheBytes > 0)) { reject(new HandshakeError('protocol', 'bad cache size in HELLO')); return; }
      resolve(h);
    };
    const onClose = (why: string): void => { cleanup(); reject(new HandshakeError('link', why)); };
    const cleanup = (): void => { clearTimeout(timer); link.off('frame', onFrame); link.off('close', onClose); };
    link.on('frame', onFrame);
    link.on('close', onClose);
  });
}

export function safeJson<T>(b: Buffer): T | undefined {
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
