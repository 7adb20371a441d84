// Sender relay (source site): accepts the migration connections of QEMU (or virt-handler's
// proxy), encodes each as a session, and multiplexes the sessions over one link to the receiver
// relay. Buffers stay small: a source socket is paused whenever the link has a backlog, or the
// session has used up the credit the receiver grants as it writes downstream, so QEMU's own
// bandwidth estimate keeps reflecting what really leaves the site.
import net from 'node:net';
import zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { logger } from '../../util/log.ts';
import { AdaptiveLevel, batchHeader, convergenceAdvice, createContext, DigestSet, F, METHOD_STORED, METHOD_ZSTD, packBatch, SessionEncoder, TECHNIQUES, zstdCompress } from '../codec/index.ts';
import type { Batch, CodecContext, EncoderOptions, StreamMode } from '../codec/index.ts';
import { flowKey } from './flows.ts';
import { StreamHashPool, type StreamHash } from './stream-hash.ts';
import { ZstdWorkerPool } from './zstd-pool.ts';
import { LinkProbe, type ProbeResult } from './link-probe.ts';
import { BottleneckMonitor } from './bottleneck.ts';
import type { FlowOwner, SessionOpen } from './flows.ts';
import { awaitHello, connectLink, DEFAULT_LINK_TIMEOUT_MS, HandshakeError, KEEPALIVE_SEQ_BIT, keepaliveIntervalMs, Link, safeJson } from './link.ts';
import * as M from './metrics.ts';
import type { HostPort, LinkSecurity } from './net-util.ts';
import { acceptedWithReadBuffer } from './net-util.ts';
import type { RegisteredFlow } from './registry.ts';

const log = logger('relay-sender');

export interface ListenSpec {
  addr: HostPort;
  /** Receiver-side target name this listener's sessions go to. */
  target: string;
  mode: StreamMode;
}

/** What a session is: where the receiver sends it, how it is encoded, whose it is. */
interface SessionSpec {
  /** The receiver's target name, or the flow's original destination (HOST:PORT). */
  target: string;
  mode: StreamMode;
  destination?: HostPort;
  owner?: FlowOwner;
  encoder?: Pick<EncoderOptions, 'dedup' | 'deltas' | 'cacheWindow'>;
  /** Batches go stored (relay.compression None, or an encrypted stream). */
  stored?: boolean;
  opaque?: boolean;
}

const PAGE = 4096;
/** Probed rates from here on (bytes/s) are taken as the link's capacity (see probeLink). */
const FAST_PROBE_TRUSTED_BPS = 50e6;

/** The session of an intercepted flow, from its registration (the migration's relay settings). */
export function flowSessionSpec(flow: RegisteredFlow): SessionSpec {
  const { settings } = flow;
  const opaque = settings.opaque;
  return {
    target: flowKey(flow.destination), destination: flow.destination, owner: flow.owner, opaque,
    // An encrypted stream is neither parsed nor cached nor compressed: the relay only carries it.
    mode: opaque ? 'generic' : 'auto',
    encoder: opaque ? { cacheWindow: 0 } : { dedup: settings.dedup, deltas: settings.deltaPages, cacheWindow: Math.floor(flow.cacheMiB * (1 << 20) / PAGE) },
    stored: opaque || settings.compression === 'None',
  };
}

export interface SenderOptions {
  /** Static listeners (each names a receiver target); intercepted flows come through acceptFlow. */
  listen: ListenSpec[];
  peer: HostPort;
  security: LinkSecurity;
  cacheBytes: number;
  /** zstd level, or 'auto' for the adaptive policy. */
  level?: number | 'auto';
  /** Raw bytes a session may have in flight before the receiver has written them downstream. */
  windowBytes?: number;
  /** Link backlog above which sources are paused. */
  linkHighWater?: number;
  /** Compress off the event loop (a worker thread), in parallel with parsing (default true). */
  asyncCompression?: boolean;
  /** SHA-256 of each session's input, in the stats (end-to-end check against the receiver's). */
  hashStreams?: boolean;
  /** With hashStreams: memory to copy the streams into and hash each once its session is over
   *  (stream-hash.ts; 0, the default: hash as the bytes pass). */
  hashBufferBytes?: number;
  /**
   * Registered flows bypass the relay when the link probed at least this fast (bits/s; 0: never):
   * see bypassReason(). The probe runs over the relay's own link (its TLS, its event loop), so a
   * probe this fast means the link outruns what this relay can carry.
   */
  bypassAboveBps?: number;
  /**
   * Bytes of an incomplete record are force-flushed (and the parser goes generic) after this much
   * input silence. Holding a partial record costs nothing while QEMU merely pauses (rate limit,
   * CPU): the destination could not use half a record either. The timer only breaks a deadlock
   * if the parser were wrong about a record boundary while the source waits for a reply.
   */
  stallMs?: number;
  /**
   * The link counts as cut after this long without a byte from the receiver (0: never; default
   * DEFAULT_LINK_TIMEOUT_MS). The sender sends a keepalive PROBE every quarter of it (at most every
   * second), which the receiver answers, and which tells the receiver to apply its own timeout.
   */
  linkTimeoutMs?: number;
}

/** Batches being compressed (at most this many, or this many op bytes) hold the sources back. */
const MAX_INFLIGHT = 4;
/** Pooled copy buffers for batches being compressed or written: the default batch (512 KiB of
 *  ops) plus a record. A stored batch's buffer returns to the pool once the link socket has taken
 *  it, so a few more than MAX_INFLIGHT are kept. */
const OPS_POOL_BUF = (512 << 10) + (64 << 10);
const OPS_POOL_KEEP = 8;
const MAX_INFLIGHT_BYTES = 1 << 20;
/** A source socket's read buffer (one per session, reused for every read). */
const SOURCE_READ_BUF = 256 << 10;


interface Pending {
  session: Session;
  type: number;
  rawLen: number;
  opsLen: number;
  /** The frame's payload in parts (a batch: its header, then its ops or their zstd output); set
   *  once compressed (stored batches and control frames: immediately). */
  parts?: Buffer[];
  /** Gives pooled buffers back once the link socket has taken the frame. */
  release?: () => void;
}

interface Session {
  id: number;
  label: string;
  target: string;
  spec: SessionSpec;
  source: net.Socket;
  enc: SessionEncoder;
  credit: number;
  state: 'open' | 'fin' | 'closed';
  stallTimer?: NodeJS.Timeout;
  batchTimer?: NodeJS.Timeout;
  flushScheduled: boolean;
  startedAt: number;
  closeReason?: string;
  returnBytes: number;
  rfin: boolean;
  /** DATA frames and the raw bytes they carry: the FIN states them, the receiver checks them. */
  sent: F.SessionTotals;
  hash?: StreamHash;
  inputSha256?: string;
  /** What has been added to the Prometheus counters already (they are fed incrementally). */
  accounted: { raw: Float64Array; lookups: number; hits: number };
}

export class SenderRelay {
  private readonly opts: Required<Omit<SenderOptions, 'level'>> & { level: number | 'auto' };
  private readonly servers: net.Server[] = [];
  private link: Link | undefined;
  private linkReady: Promise<Link> | undefined;
  private ctx: CodecContext | undefined;
  private readonly sessions = new Map<number, Session>();
  private readonly finished: Record<string, unknown>[] = [];
  private readonly opsPool: Buffer[] = [];
  private readonly hashes: StreamHashPool;
  private readonly zstd = new ZstdWorkerPool();
  private nextId = 1;
  private readonly level: AdaptiveLevel;
  private readonly bottleneck: BottleneckMonitor;
  private lastMode = '';
  private maxBuffered = 0;
  private stopped = false;
  private readonly pipeline: Pending[] = [];
  private inflightOps = 0;
  /** keepLinkUp(): the link is (re)connected in the background, not on a migration's first byte. */
  private keepUp = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectBackoffMs = 1000;
  private probe: LinkProbe | undefined;
  private probed: ProbeResult | undefined;

  constructor(opts: SenderOptions) {
    this.opts = {
      level: 'auto', windowBytes: 8 << 20, linkHighWater: 256 << 10, stallMs: 3000, asyncCompression: true, hashStreams: false, hashBufferBytes: 0, bypassAboveBps: 0,
      linkTimeoutMs: DEFAULT_LINK_TIMEOUT_MS, ...opts,
    };
    this.level = new AdaptiveLevel(this.opts.level);
    this.hashes = new StreamHashPool(this.opts.hashStreams ? this.opts.hashBufferBytes : 0);
    this.bottleneck = new BottleneckMonitor({ excluded: () => this.hashes.spent() });
  }

  /** Starts the listeners; returns their bound addresses (port 0 picks a free port). */
  async start(): Promise<HostPort[]> {
    const out: HostPort[] = [];
    // The compression threads start before the first migration does (see ZstdWorkerPool.warm).
    if (this.opts.asyncCompression && this.opts.level !== 0) await this.zstd.warm();
    for (const spec of this.opts.listen) {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.accept(s, spec));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(spec.addr.port, spec.addr.host, () => { server.off('error', reject); resolve(); });
      });
      const a = server.address() as net.AddressInfo;
      out.push({ host: a.address, port: a.port });
      this.servers.push(server);
      log.info('sender relay listening', { listen: `${a.address}:${a.port}`, target: spec.target, mode: spec.mode });
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    for (const s of this.servers) s.close();
    for (const s of this.sessions.values()) this.closeSession(s, 'relay stopped', false);
    this.link?.close('relay stopped');
    await this.zstd.close();
  }

  /** Connects to the receiver now instead of on the first migration connection. */
  async connect(): Promise<void> {
    await this.getLink();
  }

  /**
   * Keeps the link to the receiver up from now on, and brings it back after a loss (with backoff
   * while the receiver is unreachable). Without it, the first migration connection waits for the
   * TLS handshake and for both sides to allocate their caches (a 256 MiB cache is ~0.4 s of page
   * faults per side on the test machine: a third of a whole 1 Gbit/s migration).
   */
  keepLinkUp(): void {
    this.keepUp = true;
    this.scheduleReconnect(0);
  }

  private scheduleReconnect(delayMs: number): void {
    if (!this.keepUp || this.stopped || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopped) return;
      this.getLink().then(() => { this.reconnectBackoffMs = 1000; }, (err: unknown) => {
        const wait = this.reconnectBackoffMs;
        this.reconnectBackoffMs = Math.min(30_000, wait * 2);
        log.warn('receiver relay not reachable; retrying', { error: String((err as Error).message ?? err), retryInMs: wait });
        this.scheduleReconnect(wait);
      });
    }, delayMs);
    this.reconnectTimer.unref();
  }

  /** The link to the receiver, connected and handshaken on first use (and after it was lost). */
  private getLink(): Promise<Link> {
    if (this.linkReady) return this.linkReady; // connected, or connecting: one link for all sessions
    this.linkReady = (async () => {
      const socket = await connectLink(this.opts.peer, this.opts.security);
      const link = new Link(socket);
      link.sendJson(F.F_HELLO, 0, { magic: 'cloudnet-relay', version: F.PROTOCOL_VERSION, cacheBytes: this.opts.cacheBytes, role: 'sender' } satisfies F.Hello);
      let hello: F.Hello;
      try {
        hello = await awaitHello(link);
      } catch (err) {
        link.close('handshake failed');
        throw err;
      }
      // The receiver answers with the cache size both sides use (never more than we offered).
      this.ctx = createContext(Math.min(hello.cacheBytes, this.opts.cacheBytes));
      if (hello.seedSlots) this.ctx.remoteSeeds = new DigestSet(hello.seedSlots);
      M.cacheMemory.set({ role: 'sender' }, this.ctx.cache.memoryBytes);
      this.link = link;
      link.attach((f) => this.onFrame(f));
      this.keepAlive(link);
      this.probeLink(link);
      link.on('drain', () => this.resumeAll());
      link.on('close', (why) => {
        if (!this.stopped) log.warn('link to receiver relay lost; closing its sessions', { why, sessions: this.sessions.size });
        // A damaged return stream names the sessions' failure 'corrupt' (or 'truncated').
        for (const s of this.sessions.values()) this.closeSession(s, link.failure?.reason ?? 'peer-lost', false);
        this.pipeline.length = 0; // compressions still running finish into nothing
        this.inflightOps = 0;
        if (this.link === link) { this.link = undefined; this.linkReady = undefined; }
        this.scheduleReconnect(this.reconnectBackoffMs);
      });
      log.info('relay link up', { peer: `${this.opts.peer.host}:${this.opts.peer.port}`, cacheBytes: this.ctx.cache.slots * this.ctx.cache.slotSize });
      return link;
    })();
    this.linkReady.catch(() => { this.linkReady = undefined; });
    return this.linkReady;
  }

  /**
   * Keepalives on a link with a timeout: a small PROBE (sequence number with KEEPALIVE_SEQ_BIT)
   * at a quarter of the timeout, at most every second. The receiver's PROBE_ACK keeps this side
   * hearing from it while no session runs; the PROBE itself keeps the receiver hearing from us,
   * and tells it that this sender keeps the link alive, so it may time the link out too (a
   * sender without keepalives is never timed out by the receiver).
   */
  private keepAlive(link: Link): void {
    const timeoutMs = this.opts.linkTimeoutMs;
    if (!(timeoutMs > 0)) return;
    let seq = 0;
    // One buffer for all of them: a frame this small is copied into the frame it is sent in.
    const payload = Buffer.alloc(4);
    const send = (): void => {
      seq = (seq + 1) & 0x7fff_ffff;
      payload.writeUInt32BE((KEEPALIVE_SEQ_BIT | seq) >>> 0, 0);
      link.send(F.F_PROBE, 0, payload);
    };
    send();
    const timer = setInterval(send, keepaliveIntervalMs(timeoutMs));
    timer.unref();
    link.once('close', () => clearInterval(timer));
    link.closeWhenSilent(timeoutMs);
  }

  /** Measures the new link's capacity; the adaptive policy's first step follows from it. */
  private probeLink(link: Link): void {
    const probe = new LinkProbe(link);
    this.probe = probe;
    void probe.run().then((r) => {
      if (this.probe === probe) this.probe = undefined;
      if (this.link !== link) return;
      if (!r) { log.warn('relay link probe failed; the adaptive policy starts at its default step', {}); return; }
      this.probed = r;
      // On a slow link with a long round trip, a fresh connection's slow start makes the probed
      // rate a low estimate, and sending near a low estimate would count as link-bound: there
      // only the first step follows from it.
      this.level.startFor(r.bytesPerSec);
      // A fast link's probe is a fair capacity (no long slow start to hide it): the policy then
      // knows from the first window how close to the link's rate the stream already comes.
      if (r.bytesPerSec >= FAST_PROBE_TRUSTED_BPS) this.bottleneck.assumeCapacity(r.bytesPerSec / 1000);
      this.applyStep();
      log.info('relay link probed', { rttMs: Math.round(r.rttMs * 10) / 10, mbitPerSec: Math.round(r.bytesPerSec * 8 / 1e6), probeBytes: r.probeBytes, startMode: this.level.mode });
    });
  }

  /**
   * Why a migration registering now should bypass the relay, or undefined. The last step of the
   * shedding ladder (adaptive.ts) is pass-through, and even that costs three socket crossings, a
   * frame layer and the link's encryption per byte: measured here on wanem's unshaped link (probed
   * ~2.4 Gbit/s), a 512 MiB memwriter guest took 1.8 s through the relay in pass-through against
   * 0.1 s plain. On a link the probe finds that fast the relay can only slow a migration down, so
   * the gateway leaves its flows alone: they cross the WireGuard site link like any other traffic.
   */
  bypassReason(): string | undefined {
    const limit = this.opts.bypassAboveBps;
    const p = this.probed;
    // A fixed --level is the relay's operator choosing the work: no policy second-guesses it.
    if (!limit || this.opts.level !== 'auto' || !p || !this.link || p.bytesPerSec * 8 < limit) return undefined;
    const mbit = (bps: number): string => `${Math.round(bps / 1e6)} Mbit/s`;
    return `the relay link probed at ${mbit(p.bytesPerSec * 8)}, at least the ${mbit(limit)} from which the relay only slows a migration down (--bypass-above-mbit): its flows cross the site link unrelayed, as in a plain migration`;
  }

  /** A redirected connection of a registered flow (registry.ts): its session carries the flow's
   *  original destination and owner, and is encoded with the migration's settings. */
  acceptFlow(source: net.Socket, flow: RegisteredFlow): void {
    this.accept(source, flowSessionSpec(flow));
  }

  private accept(source: net.Socket, spec: SessionSpec): void {
    if (this.stopped) { source.destroy(); return; }
    const id = this.nextId++;
    const label = `${source.remoteAddress}:${source.remotePort}->${spec.target}`;
    this.getLink().then((link) => this.startSession(link, id, label, source, spec), (err: unknown) => {
      const reason = err instanceof HandshakeError ? err.reason : 'peer-unreachable';
      log.error('cannot reach the receiver relay; refusing the migration connection', { session: String(id), reason, error: String((err as Error).message ?? err) });
      M.sessionsClosed.inc({ role: 'sender', reason });
      source.destroy();
    });
  }

  private startSession(link: Link, id: number, label: string, accepted: net.Socket, spec: SessionSpec): void {
    const ctx = this.ctx!;
    // Reads land in one reused buffer per session (see acceptedWithReadBuffer in net-util.ts); `s` is set just below,
    // before the first read can arrive (reads are delivered from the event loop).
    const source = acceptedWithReadBuffer(accepted, Buffer.allocUnsafeSlow(SOURCE_READ_BUF), (chunk) => this.onSourceData(s, chunk));
    const s: Session = {
      id, label, target: spec.target, spec, source, credit: this.opts.windowBytes, state: 'open', flushScheduled: false,
      startedAt: Date.now(), returnBytes: 0, rfin: false, sent: { batches: 0, bytes: 0 },
      accounted: { raw: new Float64Array(TECHNIQUES.length), lookups: 0, hits: 0 },
      enc: new SessionEncoder(ctx, (b) => this.sendBatch(s, b), { mode: spec.mode, ...spec.encoder }),
    };
    s.enc.setEffort(this.level.effort, this.level.mode);
    if (this.opts.hashStreams) s.hash = this.hashes.open();
    this.sessions.set(id, s);
    M.sessionsOpened.inc({ role: 'sender' });
    const open: SessionOpen = spec.destination
      ? { mode: spec.mode, label, destination: flowKey(spec.destination), ...(spec.owner ? { owner: spec.owner } : {}) }
      : { mode: spec.mode, target: spec.target, label };
    link.sendJson(F.F_OPEN, id, open);
    log.info('session opened', { session: String(id), label, ...(spec.owner ? { migration: `${spec.owner.namespace}/${spec.owner.name}` } : {}) });
    if (source === accepted) source.on('data', (chunk: Buffer) => this.onSourceData(s, chunk));
    source.on('end', () => {
      if (s.state !== 'open') return;
      // A deferred check hashes once the session is over (sealHash), off the migration's path.
      if (s.hash && !s.hash.deferred) this.sealHash(s);
      this.work(() => s.enc.end());
      s.state = 'fin';
      clearTimeout(s.stallTimer);
      clearTimeout(s.batchTimer);
      this.sendAfterBatches(s, F.F_FIN, F.totalsPayload(s.sent));
      if (s.rfin) this.finishSession(s);
    });
    source.on('error', (err) => log.warn('source connection error', { session: String(id), error: err.message }));
    source.on('close', () => {
      if (s.state === 'open') this.closeSession(s, 'source-aborted', true);
    });
    source.resume();
  }

  private work(fn: () => void): void {
    const t0 = performance.now();
    fn();
    this.bottleneck.addEncodeMs(performance.now() - t0);
  }

  private onSourceData(s: Session, chunk: Buffer): void {
    if (s.state !== 'open') return;
    s.hash?.update(chunk);
    this.bottleneck.addInput(chunk.length);
    this.work(() => s.enc.write(chunk));
    if (!s.flushScheduled) {
      s.flushScheduled = true;
      // Once this loop turn's reads are done, emit the open batch if the link is hungry. While
      // the link has a backlog, the batch keeps growing (larger zstd batches compress better and
      // cost no latency then); the link's 'drain' or a short timer emits it.
      setImmediate(() => {
        s.flushScheduled = false;
        if (s.state !== 'open') return;
        if ((this.link?.backlog ?? 0) <= this.opts.linkHighWater / 4) this.work(() => s.enc.flush(false));
        else if (!s.batchTimer) s.batchTimer = setTimeout(() => { s.batchTimer = undefined; if (s.state === 'open') this.work(() => s.enc.flush(false)); }, 20);
      });
    }
    // One stall timer per session, re-armed per read (refresh(): no timer object per read).
    if (s.enc.pendingBytes) {
      if (s.stallTimer) s.stallTimer.refresh();
      else s.stallTimer = setTimeout(() => { s.stallTimer = undefined; if (s.state === 'open') this.work(() => s.enc.flush(true)); }, this.opts.stallMs);
    } else if (s.stallTimer) {
      clearTimeout(s.stallTimer);
      s.stallTimer = undefined;
    }
    this.applyBackpressure(s);
  }

  /**
   * A batch leaves the encoder. Cache inserts were made in encode order, so frames must reach the
   * link in exactly that order, across all sessions: batches go through one FIFO. With async
   * compression, zstd runs on libuv's thread pool while the main thread parses and fingerprints
   * the next input; a frame is sent once it and everything before it are compressed.
   */
  private sendBatch(s: Session, b: Batch): void {
    if (!this.link) return;
    // Only a batch that is to be compressed is tested on a sample (a stored or passed-through
    // batch would otherwise pay a 16 KiB zstd sample each: ~10 % of the relay's CPU, measured).
    const wanted = s.spec.stored ? 0 : this.level.next();
    const level = wanted > 0 && !this.level.skip(b.ops) ? wanted : 0;
    s.credit -= b.rawLen;
    s.sent.batches++;
    s.sent.bytes += b.rawLen;
    const entry: Pending = { session: s, type: F.F_DATA, rawLen: b.rawLen, opsLen: b.ops.length };
    this.pipeline.push(entry);
    this.inflightOps += b.ops.length;
    if (level > 0 && !this.opts.asyncCompression) {
      const payload = packBatch(b.ops, b.rawLen, level, zstdCompress(b.ops, level), b.inserts);
      entry.parts = [payload];
      this.level.observe(b.ops.length, payload.length);
      this.drainPipeline();
      return;
    }
    // The encoder reuses its buffer: the ops are copied into one of a few pooled buffers, for the
    // thread pool or for the socket (a fresh 512 KiB per batch would be external memory churn,
    // i.e. full GCs). A batch goes as [frame header][batch header][ops or zstd output] in one
    // writev: the payload is not copied again into a packed batch.
    const buf = this.takeOpsBuffer(b.ops.length);
    b.ops.copy(buf);
    const ops = buf.subarray(0, b.ops.length);
    const stored = (): void => {
      entry.parts = [batchHeader(METHOD_STORED, b.rawLen, ops.length, b.inserts), ops];
      entry.release = () => this.giveOpsBuffer(buf);
    };
    if (level === 0) {
      stored();
      this.drainPipeline();
      return;
    }
    const finish = (): void => {
      this.level.observe(ops.length, entry.parts!.reduce((n, p) => n + p.length, 0));
      this.drainPipeline();
    };
    if (this.zstd.usable) {
      this.zstd.compress(ops, level, (frame, releaseFrame) => {
        // A batch whose zstd output is not smaller goes stored (as packBatch does).
        if (!frame || frame.length >= ops.length) {
          releaseFrame();
          stored();
        } else {
          entry.parts = [batchHeader(METHOD_ZSTD, b.rawLen, ops.length, b.inserts), frame];
          entry.release = releaseFrame;
          this.giveOpsBuffer(buf);
        }
        finish();
      });
      return;
    }
    // The worker failed: libuv's thread pool, a fresh context per batch.
    zlib.zstdCompress(ops, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }, (err, out) => {
      // A batch whose zstd output is not smaller goes stored (as packBatch does).
      if (err || out.length >= ops.length) stored();
      else {
        entry.parts = [batchHeader(METHOD_ZSTD, b.rawLen, ops.length, b.inserts), out];
        this.giveOpsBuffer(buf);
      }
      finish();
    });
  }

  private takeOpsBuffer(len: number): Buffer {
    const spare = this.opsPool.pop();
    // Shared memory: the compression worker reads the batch where it is.
    return spare && spare.length >= len ? spare : ZstdWorkerPool.sharedBuffer(Math.max(len, OPS_POOL_BUF));
  }

  private giveOpsBuffer(buf: Buffer): void {
    if (this.opsPool.length < OPS_POOL_KEEP) this.opsPool.push(buf);
  }

  private compressionFull(): boolean {
    return this.pipeline.length >= MAX_INFLIGHT || this.inflightOps >= MAX_INFLIGHT_BYTES;
  }

  /** Queues a control frame behind the session's pending batches. */
  private sendAfterBatches(s: Session, type: number, payload: Buffer): void {
    this.pipeline.push({ session: s, type, rawLen: 0, opsLen: 0, parts: [payload] });
    this.drainPipeline();
  }

  private drainPipeline(): void {
    const link = this.link;
    // Sampled before this call's own writes: a backlog left from earlier frames means the link
    // drains slower than the relay produces (right after a write, any fast link has one).
    if (link && this.pipeline[0]?.parts) this.sample(link);
    while (this.pipeline.length && this.pipeline[0].parts) {
      const e = this.pipeline.shift()!;
      const parts = e.parts!;
      this.inflightOps -= e.opsLen;
      // Frames of a session closed meanwhile are still sent: the receiver decodes them to keep
      // its cache in lockstep, and drops their output.
      if (!link || link.closed) { e.release?.(); continue; }
      let len = 0;
      for (const p of parts) len += p.length;
      if (parts.length === 1 && !e.release) link.send(e.type, e.session.id, parts[0]);
      else link.sendParts(e.type, e.session.id, parts, e.release);
      if (e.type === F.F_DATA) {
        this.bottleneck.addWire(len + F.FRAME_HEADER);
        e.session.enc.stats.wireOut += len + F.FRAME_HEADER;
        this.accountTechniques(e.session);
        M.hot.senderWireOut.inc(len + F.FRAME_HEADER);
      }
    }
    if (!this.compressionFull()) this.resumeAll(false);
  }

  private sample(link: Link): void {
    // The link (or the far side) is the bottleneck when its socket has a backlog, or when a
    // session has most of its credit window in flight: the kernel's send buffer hides a slow WAN
    // from writableLength until it is full, but not from the credit the receiver returns.
    let starved = false;
    for (const s of this.sessions.values()) if (s.state === 'open' && s.credit < this.opts.windowBytes / 4) starved = true;
    const verdict = this.bottleneck.sample({ linkBacklogged: link.backlog > this.opts.linkHighWater / 4, creditStarved: starved, compressionQueued: this.compressionFull() });
    if (verdict) {
      // Passing pages through sends every byte, so it cannot take the stream faster than the link
      // carries it: when the stream already comes in at most of the link's rate, shedding into
      // pass-through would only make the link the bottleneck at a worse ratio (at 1 Gbit/s here,
      // stored batches at ~half the bytes kept pace with the link; pass-through filled it).
      const heldByLink = this.level.downIsPassThrough && verdict.linkCapacity > 0 && verdict.inputRate >= 0.8 * verdict.linkCapacity;
      this.level.feedback(verdict.linkBusy, verdict.cpuBusy && !heldByLink);
      M.compressionLevel.set(this.level.level);
      this.applyStep();
    }
    const buffered = this.bufferedBytes();
    M.hot.senderBuffered.set(buffered);
    if (buffered > this.maxBuffered) { this.maxBuffered = buffered; M.bufferedBytesMax.set({ role: 'sender' }, buffered); }
  }

  /** Hands the policy's step to every open session when it changed (a step names its effort). */
  private applyStep(): void {
    if (this.level.mode === this.lastMode) return;
    this.lastMode = this.level.mode;
    for (const s of this.sessions.values()) s.enc.setEffort(this.level.effort, this.level.mode);
  }

  /** Bytes taken from sources that are not yet on the link socket's kernel buffer. */
  bufferedBytes(): number {
    let n = (this.link?.backlog ?? 0) + this.inflightOps;
    for (const s of this.sessions.values()) n += s.enc.pendingBytes;
    return n;
  }

  private applyBackpressure(s: Session): void {
    const link = this.link;
    const blocked = !link || link.backlog > this.opts.linkHighWater || s.credit <= 0 || this.compressionFull();
    if (blocked && !s.source.isPaused()) s.source.pause();
  }

  private resumeAll(flushOpen = true): void {
    for (const s of this.sessions.values()) {
      if (flushOpen && s.state === 'open' && s.batchTimer) {
        clearTimeout(s.batchTimer);
        s.batchTimer = undefined;
        this.work(() => s.enc.flush(false));
      }
      this.maybeResume(s);
    }
  }

  private maybeResume(s: Session): void {
    const link = this.link;
    if (s.state !== 'open' || !link || link.backlog > this.opts.linkHighWater || s.credit <= 0 || this.compressionFull()) return;
    if (s.source.isPaused()) s.source.resume();
  }

  private onFrame(f: F.Frame): void {
    if (f.type === F.F_SEEDED) { this.onSeeded(f.payload); return; }
    if (f.type === F.F_PROBE_ACK) { this.probe?.onAck(f.payload); return; }
    const s = this.sessions.get(f.session);
    if (!s) return; // a session we already closed
    switch (f.type) {
      case F.F_CREDIT:
        if (f.payload.length === 4) s.credit += f.payload.readUInt32BE(0);
        this.maybeResume(s);
        break;
      case F.F_RDATA:
        s.returnBytes += f.payload.length;
        s.source.write(f.payload);
        break;
      case F.F_RFIN:
        if (F.parseCount(f.payload) !== s.returnBytes) {
          // Return-path bytes were lost or repeated: the source must not see a clean end.
          log.error('return path incomplete', { session: String(s.id), stated: String(F.parseCount(f.payload)), received: String(s.returnBytes) });
          this.closeSession(s, 'corrupt', true);
          break;
        }
        s.rfin = true;
        s.source.end();
        if (s.state === 'fin') this.finishSession(s);
        break;
      case F.F_CLOSE: {
        const c = safeJson<F.CloseInfo>(f.payload);
        log.error('receiver relay closed the session', { session: String(s.id), reason: c?.reason ?? 'unknown', message: c?.message ?? '' });
        this.closeSession(s, c?.reason ?? 'closed-by-peer', false);
        break;
      }
      default:
        break;
    }
  }

  /** The receiver holds this content outside the cache (seeded): it can go as references. */
  private onSeeded(payload: Buffer): void {
    const ctx = this.ctx;
    if (!ctx?.remoteSeeds || payload.length % 16) return;
    const k = new Uint32Array(4);
    for (let o = 0; o < payload.length; o += 16) {
      for (let i = 0; i < 4; i++) k[i] = payload.readUInt32LE(o + 4 * i);
      if (!ctx.remoteSeeds.add(k)) break;
    }
  }

  /** The input's SHA-256 (--hash-streams), once the source has ended or the session is over. */
  private sealHash(s: Session): void {
    if (s.hash && s.inputSha256 === undefined) s.inputSha256 = s.hash.digest();
  }

  private finishSession(s: Session): void {
    if (s.state === 'closed') return;
    s.state = 'closed';
    s.closeReason = 'ok';
    this.sealHash(s);
    this.retire(s);
    M.sessionsClosed.inc({ role: 'sender', reason: 'ok' });
    log.info('session finished', { session: String(s.id), bytesIn: String(s.enc.stats.bytesIn), wireBytes: String(s.enc.stats.wireOut) });
  }

  private closeSession(s: Session, reason: string, notifyPeer: boolean): void {
    if (s.state === 'closed') return;
    // The input's digest, as before a deferred check, only once the source has ended.
    if (s.state === 'fin') this.sealHash(s);
    else s.hash?.release();
    s.state = 'closed';
    s.closeReason = reason;
    clearTimeout(s.stallTimer);
    clearTimeout(s.batchTimer);
    if (!s.source.destroyed) s.source.resetAndDestroy(); // QEMU must see an abort, not a clean end
    if (notifyPeer) this.link?.sendJson(F.F_CLOSE, s.id, { reason, message: `sender closed session: ${reason}` } satisfies F.CloseInfo);
    // The open batch already made its cache inserts on this side: it still goes out (the receiver
    // decodes a closed session's frames for exactly this), or the caches fall out of lockstep
    // and a later session referencing that content fails with cache-desync.
    if (this.ctx?.active === s.enc) s.enc.emitPending();
    this.retire(s);
    M.sessionsClosed.inc({ role: 'sender', reason });
    log.warn('session closed', { session: String(s.id), reason });
  }

  private retire(s: Session): void {
    this.sessions.delete(s.id);
    this.accountTechniques(s);
    this.finished.push(this.sessionJson(s));
    if (this.finished.length > 100) this.finished.shift();
  }

  private accountTechniques(s: Session): void {
    const st = s.enc.stats;
    const a = s.accounted;
    for (let i = 0; i < TECHNIQUES.length; i++) {
      const d = st.rawBytes[i] - a.raw[i];
      if (d > 0) { M.bytesIn.inc({ technique: TECHNIQUES[i] }, d); a.raw[i] = st.rawBytes[i]; }
    }
    if (st.cacheLookups > a.lookups) { M.cacheLookups.inc(st.cacheLookups - a.lookups); a.lookups = st.cacheLookups; }
    if (st.cacheHits > a.hits) { M.cacheHits.inc(st.cacheHits - a.hits); a.hits = st.cacheHits; }
  }

  private sessionJson(s: Session): Record<string, unknown> {
    return {
      id: s.id, label: s.label, target: s.target, state: s.state, closeReason: s.closeReason, startedAt: new Date(s.startedAt).toISOString(),
      ...(s.spec.owner ? { migration: s.spec.owner } : {}), ...(s.spec.destination ? { destination: flowKey(s.spec.destination) } : {}),
      ...(s.spec.opaque ? { opaque: true } : {}),
      inputSha256: s.inputSha256, pendingBytes: s.enc.pendingBytes, sessionMemoryBytes: s.enc.memoryBytes, credit: s.credit, returnBytes: s.returnBytes, batches: s.sent.batches, ...s.enc.stats.toJSON(),
      convergence: convergenceAdvice(s.enc.stats.rounds, { throughputBps: s.enc.stats.bytesIn / Math.max(0.001, (Date.now() - s.startedAt) / 1000) }),
    };
  }

  /** Stats for the operator (JSON): live and recently finished sessions, cache and link figures. */
  stats(): Record<string, unknown> {
    const c = this.ctx?.cache;
    const bypass = this.bypassReason();
    return {
      role: 'sender',
      link: this.link ? { up: true, bytesOut: this.link.bytesOut, bytesIn: this.link.bytesIn, backlog: this.link.backlog, ...(this.probed ? { probe: this.probed } : {}) } : { up: false },
      zstdLevel: this.level.level,
      // The adaptive work mode now, and how often it shed work or took it back (adaptive.ts);
      // each round's bytes by mode are in its session's rounds[].modes.
      mode: this.level.mode,
      modeSteps: { down: this.level.stepsDown, up: this.level.stepsUp },
      // Set when a migration registering now would bypass the relay (bypassReason()).
      ...(bypass ? { flowBypass: bypass } : {}),
      bufferedBytes: this.bufferedBytes(),
      maxBufferedBytes: this.maxBuffered,
      cache: c ? { slots: c.slots, used: c.size, memoryBytes: c.memoryBytes, inserts: c.inserts, evictions: c.evictions } : undefined,
      remoteSeeds: this.ctx?.remoteSeeds?.size ?? 0,
      // The compression threads (zstd-pool.ts): their CPU is part of the relay's, not of its event loop.
      compression: { threads: this.zstd.threadCount, cpuSeconds: this.zstd.cpuSeconds },
      sessions: [...this.sessions.values()].map((s) => this.sessionJson(s)),
      finished: this.finished,
      ...(this.opts.hashStreams ? { streamHashCpuSeconds: this.hashes.cpuSeconds } : {}),
    };
  }
}
