// Receiver relay (target site): accepts links from sender relays, decodes each session's batches
// in link order (which keeps the shared cache in lockstep), and writes the exact original bytes to
// the real destination (QEMU's incoming socket or virt-handler's proxy). Bytes the destination
// sends back are forwarded unchanged. A session whose batch cannot be decoded is closed before
// any byte of that batch is written; the other sessions carry on. A session ends cleanly only on a
// FIN whose totals match what was decoded; a link that ends or fails a frame check before the FIN
// aborts it (a TCP reset downstream, so QEMU's migration fails and the source keeps running).
import net from 'node:net';
import tls from 'node:tls';
import { logger } from '../../util/log.ts';
import { batchInserts, BatchUnpacker, createContext, DecodeError, digest, DigestStore, F, PAGE_SIZE, SessionDecoder } from '../codec/index.ts';
import type { CodecContext } from '../codec/index.ts';
import { awaitHello, DEFAULT_LINK_TIMEOUT_MS, HandshakeError, KEEPALIVE_SEQ_BIT, Link, safeJson } from './link.ts';
import * as M from './metrics.ts';
import type { HostPort, LinkSecurity } from './net-util.ts';
import { inCidrs, parseCidr, parseHostPort, tlsServerOptions } from './net-util.ts';
import type { FlowOwner, SessionOpen } from './flows.ts';
import { StreamHashPool, type StreamHash } from './stream-hash.ts';
import { OutputPool } from './output-pool.ts';

const log = logger('relay-receiver');
// Decode buffers kept for reuse (output-pool.ts): four sessions' default 8 MiB credit windows.
const POOL_KEEP_BYTES = 32 << 20;

export interface ReceiverOptions {
  listen: HostPort;
  /** Destinations by name; a session's OPEN names one (or the only one is used). */
  targets: Record<string, HostPort>;
  /**
   * Networks (IPv4 CIDRs) an intercepted flow's original destination may be in: the receiver
   * connects to the destination an OPEN names only inside these (this site's node and pod
   * networks), so a sender cannot make it dial anywhere else. Empty: flows are refused.
   */
  allowDestinations?: string[];
  security: LinkSecurity;
  /** Upper bound on the cache a sender may ask for. */
  cacheBytes: number;
  /** Credit is returned in grants of at least this many bytes (fewer frames). */
  creditGrant?: number;
  /** Memory for seeded content (see seed()); 0 disables seeding. */
  seedBytes?: number;
  /** SHA-256 of each session's output, in the stats (end-to-end check against the sender's). */
  hashStreams?: boolean;
  /** With hashStreams: memory to copy the streams into and hash each once its session is over
   *  (stream-hash.ts; 0, the default: hash as the bytes pass). */
  hashBufferBytes?: number;
  /**
   * A link whose sender sends keepalives counts as cut after this long without a byte from it
   * (0: never; default DEFAULT_LINK_TIMEOUT_MS): its sessions are aborted and their destinations
   * reset. A sender without keepalives (an older relay) is never timed out.
   */
  linkTimeoutMs?: number;
}

interface Session {
  id: number;
  label: string;
  destination?: string;
  owner?: FlowOwner;
  dec: SessionDecoder;
  target?: net.Socket;
  state: 'open' | 'fin' | 'closed' | 'failed';
  pendingCredit: number;
  bytesOut: number;
  wireIn: number;
  closeReason?: string;
  finReceived: boolean;
  targetEnded: boolean;
  queued: number;
  returnBytes: number;
  decodeBroken: boolean;
  hash?: StreamHash;
  outputSha256?: string;
}

interface PeerLink {
  link: Link;
  ctx: CodecContext;
  peer: string;
  sessions: Map<number, Session>;
}

export class ReceiverRelay {
  private readonly opts: Required<Omit<ReceiverOptions, 'allowDestinations'>>;
  private readonly allowed: ReturnType<typeof parseCidr>[];
  private server: net.Server | undefined;
  private readonly peers = new Set<PeerLink>();
  private readonly finished: Record<string, unknown>[] = [];
  private maxBuffered = 0;
  private readonly pool = new OutputPool(POOL_KEEP_BYTES);
  private readonly hashes: StreamHashPool;
  /** Batches are decoded synchronously, one at a time: one unpack buffer serves all links. */
  private readonly unpacker = new BatchUnpacker();

  constructor(opts: ReceiverOptions) {
    const { allowDestinations, ...rest } = opts;
    this.opts = { creditGrant: 256 << 10, seedBytes: 0, hashStreams: false, hashBufferBytes: 0, linkTimeoutMs: DEFAULT_LINK_TIMEOUT_MS, ...rest };
    this.hashes = new StreamHashPool(this.opts.hashStreams ? this.opts.hashBufferBytes : 0);
    this.allowed = (allowDestinations ?? []).map(parseCidr);
    if (this.opts.seedBytes > 0) this.seedStore = new DigestStore(this.opts.seedBytes, PAGE_SIZE);
  }

  private readonly seedStore: DigestStore | undefined;

  /**
   * Seeds content the target site already holds (e.g. disk blocks written by the storage
   * pre-copy): it is split into 4 KiB blocks, kept here (never evicted; bounded by seedBytes) and
   * announced to the sender relays, which from then on send matching pages and blocks as
   * references. Returns how many blocks were added and whether the store is full.
   */
  seed(data: Buffer): { blocks: number; added: number; full: boolean } {
    const store = this.seedStore;
    if (!store) throw new Error('seeding is disabled (seedBytes = 0)');
    const k = new Uint32Array(4);
    const announced: Buffer[] = [];
    let added = 0;
    let blocks = 0;
    for (let o = 0; o + PAGE_SIZE <= data.length; o += PAGE_SIZE) {
      blocks++;
      digest(data.subarray(o, o + PAGE_SIZE), k);
      if (store.find(k) >= 0) continue;
      if (store.full) break;
      store.insert(data, o, o + PAGE_SIZE, k);
      const d = Buffer.allocUnsafe(16);
      for (let i = 0; i < 4; i++) d.writeUInt32LE(k[i], 4 * i);
      announced.push(d);
      added++;
    }
    if (announced.length) {
      const payload = Buffer.concat(announced);
      for (const p of this.peers) this.announce(p.link, payload);
    }
    return { blocks, added, full: store.full };
  }

  private announce(link: Link, digests: Buffer): void {
    const perFrame = 65536 * 16;
    for (let o = 0; o < digests.length; o += perFrame) link.send(F.F_SEEDED, 0, digests.subarray(o, o + perFrame));
  }

  async start(): Promise<HostPort> {
    const sec = this.opts.security;
    const server = sec.kind === 'tls'
      ? tls.createServer(tlsServerOptions(sec), (s) => this.acceptLink(s))
      : net.createServer((s) => this.acceptLink(s));
    if (sec.kind === 'tls') {
      server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        M.peersRejected.inc({ reason: 'unauthenticated' });
        log.error('relay peer rejected: TLS authentication failed', { remote: `${s.remoteAddress}:${s.remotePort}`, error: err.message });
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listen.port, this.opts.listen.host, () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    const a = server.address() as net.AddressInfo;
    log.info('receiver relay listening', { listen: `${a.address}:${a.port}`, security: sec.kind });
    return { host: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    this.server?.close();
    for (const p of this.peers) p.link.close('relay stopped');
  }

  private async acceptLink(socket: net.Socket): Promise<void> {
    // The receiver decodes each frame within its handler (nothing keeps a payload): reused buffers.
    const link = new Link(socket, { reuseFrameBuffers: true });
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let hello: F.Hello;
    try {
      hello = await awaitHello(link);
    } catch (err) {
      const reason = err instanceof HandshakeError ? err.reason : 'protocol';
      M.peersRejected.inc({ reason });
      log.error('relay peer rejected', { peer, reason, error: (err as Error).message });
      link.sendJson(F.F_CLOSE, 0, { reason, message: (err as Error).message } satisfies F.CloseInfo);
      link.socket.end();
      setTimeout(() => link.close('rejected'), 1000).unref();
      return;
    }
    const cacheBytes = Math.min(hello.cacheBytes, this.opts.cacheBytes);
    const p: PeerLink = { link, ctx: createContext(cacheBytes), peer, sessions: new Map() };
    p.ctx.seeds = this.seedStore;
    this.peers.add(p);
    M.cacheMemory.inc({ role: 'receiver' }, p.ctx.cache.memoryBytes);
    link.sendJson(F.F_HELLO, 0, {
      magic: 'cloudnet-relay', version: F.PROTOCOL_VERSION, cacheBytes, role: 'receiver', seedSlots: this.seedStore?.slots,
    } satisfies F.Hello);
    if (this.seedStore?.size) {
      const all: Buffer[] = [];
      this.seedStore.forEachKey((k) => {
        const d = Buffer.allocUnsafe(16);
        for (let i = 0; i < 4; i++) d.writeUInt32LE(k[i], 4 * i);
        all.push(d);
      });
      this.announce(link, Buffer.concat(all));
    }
    log.info('relay link up', { peer, cacheBytes: String(cacheBytes) });
    link.attach((f) => this.onFrame(p, f));
    link.on('close', (why) => {
      this.peers.delete(p);
      M.cacheMemory.dec({ role: 'receiver' }, p.ctx.cache.memoryBytes);
      // A damaged link stream names its sessions' failure 'corrupt' (or 'truncated'), a lost one 'peer-lost'.
      const reason = link.failure?.reason ?? 'peer-lost';
      for (const s of p.sessions.values()) {
        if (s.state === 'open') this.fail(p, s, reason, `link to sender relay lost before the session's FIN (stream incomplete): ${why}`, false);
        else if (s.state === 'fin') this.retire(p, s); // input complete; let the destination finish
      }
    });
  }

  private onFrame(p: PeerLink, f: F.Frame): void {
    M.hot.receiverWireIn.inc(f.payload.length + F.FRAME_HEADER);
    if (f.type === F.F_OPEN) { this.open(p, f); return; }
    // The sender measures the link (link-probe.ts): answer at once with the sequence number.
    if (f.type === F.F_PROBE) {
      p.link.send(F.F_PROBE_ACK, 0, Buffer.from(f.payload.subarray(0, 4)));
      // A keepalive: this sender keeps the link busy, so silence from it means the path is gone.
      if (f.payload.length >= 4 && (f.payload.readUInt32BE(0) & KEEPALIVE_SEQ_BIT) !== 0) p.link.closeWhenSilent(this.opts.linkTimeoutMs);
      return;
    }
    const s = p.sessions.get(f.session);
    if (!s) {
      // A batch of a session this side no longer knows still took cache slots at the sender.
      if (f.type === F.F_DATA) p.ctx.cache.skip(Math.max(0, batchInserts(f.payload)));
      return;
    }
    switch (f.type) {
      case F.F_DATA:
        this.data(p, s, f.payload);
        break;
      case F.F_FIN:
        this.fin(p, s, f.payload);
        break;
      case F.F_CLOSE: {
        const c = safeJson<F.CloseInfo>(f.payload);
        this.fail(p, s, c?.reason ?? 'closed-by-peer', c?.message ?? 'sender closed the session', false);
        break;
      }
      default:
        break;
    }
  }

  /** The sender's FIN: the destination gets its clean end only if every batch arrived. */
  private fin(p: PeerLink, s: Session, payload: Buffer): void {
    s.finReceived = true;
    if (s.state !== 'open') return;
    const sent = F.parseTotals(payload);
    try {
      if (!sent) throw new DecodeError('corrupt', 'malformed FIN');
      s.dec.finish(sent);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      this.fail(p, s, err.reason, err.message, true);
      return;
    }
    // A deferred check hashes once the destination has taken everything (retire), not before its
    // last bytes are written.
    if (s.hash && !s.hash.deferred) s.outputSha256 = s.hash.digest();
    s.state = 'fin';
    s.target?.end();
  }

  private open(p: PeerLink, f: F.Frame): void {
    const info = safeJson<SessionOpen>(f.payload);
    const s: Session = {
      id: f.session, label: info?.label ?? '', dec: new SessionDecoder(p.ctx), state: 'open', pendingCredit: 0, bytesOut: 0, wireIn: 0,
      finReceived: false, targetEnded: false, queued: 0, returnBytes: 0, decodeBroken: false,
      ...(typeof info?.destination === 'string' ? { destination: info.destination } : {}),
      ...(info?.owner ? { owner: info.owner } : {}),
    };
    if (p.sessions.has(f.session)) { this.fail(p, s, 'protocol', 'duplicate session id', true); return; }
    if (this.opts.hashStreams) s.hash = this.hashes.open();
    p.sessions.set(s.id, s);
    M.sessionsOpened.inc({ role: 'receiver' });
    const dst = this.destinationOf(info);
    if (typeof dst === 'string') {
      this.fail(p, s, 'no-target', dst, true);
      return;
    }
    const target = net.connect({ host: dst.host, port: dst.port, allowHalfOpen: true });
    target.setNoDelay(true);
    s.target = target;
    log.info('session opened', { session: String(s.id), label: s.label, target: `${dst.host}:${dst.port}` });
    target.on('data', (chunk: Buffer) => {
      s.returnBytes += chunk.length;
      p.link.send(F.F_RDATA, s.id, chunk);
    });
    target.on('end', () => {
      s.targetEnded = true;
      p.link.send(F.F_RFIN, s.id, F.countPayload(s.returnBytes));
      if (s.state === 'fin') this.retire(p, s);
    });
    target.on('error', (err) => {
      if (s.state === 'open' || s.state === 'fin') this.fail(p, s, 'target-error', `destination: ${err.message}`, true);
    });
    target.on('close', () => {
      if (s.state === 'open') this.fail(p, s, 'target-closed', 'destination closed the connection early', true);
      else if (s.state === 'fin') this.retire(p, s);
    });
  }

  /** Where a session goes: the intercepted flow's original destination (if allowed), else a named target. */
  private destinationOf(info: SessionOpen | undefined): HostPort | string {
    if (!info) return 'malformed OPEN';
    if (info.destination !== undefined) {
      let d: HostPort;
      try { d = parseHostPort(String(info.destination)); } catch { return `bad destination ${JSON.stringify(info.destination)}`; }
      if (!inCidrs(d.host, this.allowed)) return `destination ${info.destination} is outside the networks this receiver serves (--allow-destination)`;
      return d;
    }
    const names = Object.keys(this.opts.targets);
    const name = info.target && this.opts.targets[info.target] ? info.target : names.length === 1 ? names[0] : undefined;
    return name ? this.opts.targets[name] : `no destination named ${JSON.stringify(info.target)}`;
  }

  private data(p: PeerLink, s: Session, payload: Buffer): void {
    s.wireIn += payload.length + F.FRAME_HEADER;
    // Frames of a session that already ended are still decoded, so that the cache inserts they
    // carry keep this side in lockstep with the sender; their output goes nowhere.
    // A broken session's batches are not decoded, but take the cache slots they took at the sender.
    if (s.decodeBroken) { p.ctx.cache.skip(Math.max(0, batchInserts(payload))); return; }
    const decoded = this.decodeBatch(p, s, payload);
    if (!decoded) return;
    const { out, pooled } = decoded;
    if (s.state !== 'open' || !s.target) { this.pool.give(pooled); return; }
    s.bytesOut += out.length;
    s.hash?.update(out);
    s.queued += out.length;
    this.noteBuffered();
    s.target.write(out, () => {
      this.pool.give(pooled);
      s.queued -= out.length;
      s.pendingCredit += out.length;
      if (s.pendingCredit >= this.opts.creditGrant || s.queued === 0) {
        const c = Buffer.allocUnsafe(4);
        c.writeUInt32BE(s.pendingCredit);
        s.pendingCredit = 0;
        p.link.send(F.F_CREDIT, s.id, c);
      }
    });
  }

  /**
   * One batch decoded into a pooled buffer (handed back when the destination socket has taken the
   * bytes: fresh allocations would cost page faults and garbage collection on every batch), or
   * undefined when it failed (the session is failed then).
   */
  private decodeBatch(p: PeerLink, s: Session, payload: Buffer): { out: Buffer; pooled: Buffer } | undefined {
    let pooled: Buffer | undefined;
    let inserts = -1;
    try {
      const b = this.unpacker.unpack(payload);
      inserts = b.inserts;
      pooled = this.pool.take(b.rawLen);
      return { out: s.dec.decode(b.ops, b.rawLen, pooled, inserts), pooled };
    } catch (err) {
      if (pooled) this.pool.give(pooled);
      if (!(err instanceof DecodeError)) throw err;
      // unpackBatch failed (decode() charges the slots itself): the batch's inserts are lost here.
      if (inserts < 0) p.ctx.cache.skip(Math.max(0, batchInserts(payload)));
      s.decodeBroken = true;
      this.fail(p, s, err.reason, err.message, true);
      return undefined;
    }
  }

  private noteBuffered(): void {
    let n = 0;
    for (const p of this.peers) for (const s of p.sessions.values()) n += s.queued;
    M.hot.receiverBuffered.set(n);
    if (n > this.maxBuffered) { this.maxBuffered = n; M.bufferedBytesMax.set({ role: 'receiver' }, n); }
  }

  private fail(p: PeerLink, s: Session, reason: string, message: string, notifyPeer: boolean): void {
    if (s.state === 'closed' || s.state === 'failed') return;
    s.state = 'failed';
    s.closeReason = reason;
    s.hash?.release();
    // A TCP reset, not a FIN: the destination must see an aborted stream, never a clean but
    // incomplete one.
    if (s.target && !s.target.destroyed) s.target.resetAndDestroy();
    if (notifyPeer) p.link.sendJson(F.F_CLOSE, s.id, { reason, message } satisfies F.CloseInfo);
    M.sessionsClosed.inc({ role: 'receiver', reason });
    log.error('session closed', { session: String(s.id), label: s.label, reason, message });
    this.file(s);
    // Keep the entry for a while: frames already on their way are still decoded (lockstep) or
    // dropped; then forget it so that failed sessions do not accumulate.
    setTimeout(() => { if (p.sessions.get(s.id) === s) p.sessions.delete(s.id); }, 30_000).unref();
  }

  private retire(p: PeerLink, s: Session): void {
    if (s.state === 'closed' || s.state === 'failed') return;
    s.state = 'closed';
    s.closeReason = 'ok';
    if (s.hash) s.outputSha256 ??= s.hash.digest();
    p.sessions.delete(s.id);
    M.sessionsClosed.inc({ role: 'receiver', reason: 'ok' });
    log.info('session finished', { session: String(s.id), bytesOut: String(s.bytesOut) });
    this.file(s);
  }

  /** Files the session's record among the last 100 finished ones in the stats. */
  private file(s: Session): void {
    this.finished.push(this.sessionJson(s));
    if (this.finished.length > 100) this.finished.shift();
  }

  private sessionJson(s: Session): Record<string, unknown> {
    return {
      id: s.id, label: s.label, state: s.state, closeReason: s.closeReason, bytesOut: s.bytesOut, wireIn: s.wireIn, queued: s.queued,
      ...(s.destination ? { destination: s.destination } : {}), ...(s.owner ? { migration: s.owner } : {}),
      outputSha256: s.outputSha256,
    };
  }

  stats(): Record<string, unknown> {
    return {
      role: 'receiver',
      maxBufferedBytes: this.maxBuffered,
      decodeBuffers: { allocated: this.pool.allocated, peakInUse: this.pool.peakInUse, keptBytes: this.pool.kept },
      links: [...this.peers].map((p) => ({
        peer: p.peer, bytesIn: p.link.bytesIn, bytesOut: p.link.bytesOut,
        cache: { slots: p.ctx.cache.slots, used: p.ctx.cache.size, memoryBytes: p.ctx.cache.memoryBytes },
        sessions: [...p.sessions.values()].map((s) => this.sessionJson(s)),
      })),
      finished: this.finished,
      ...(this.opts.hashStreams ? { streamHashCpuSeconds: this.hashes.cpuSeconds } : {}),
    };
  }
}
