// The source agent's connection to the target agent: an ordered queue of NBD requests with a
// bounded window of unconfirmed bytes. Nothing leaves the queue before the target confirmed it
// (a reply to a later FLUSH/FUA request). When the connection drops, the link reconnects, receives
// the target's current page index, and re-sends only the queued pages the target does not already
// hold — so a cut link or a restarted target costs at most the window, never a restart from zero.
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { CodecContext } from '../relay/codec/index.ts';
import { logger } from '../util/log.ts';
import { createEncoder, RELAY_CODEC_VERSION, type CodecName, type StreamEncoder } from './codec.ts';
import { PAGE } from './extents.ts';
import { PageIndex, pageKey, ZERO_PAGE_KEY } from './index-file.ts';
import * as P from './protocol.ts';

const log = logger('storage-link');

export interface LinkOptions {
  host: string;
  port: number;
  volumeBytes: number;
  volumeId: string;
  codec?: CodecName;
  /** Unconfirmed bytes allowed in flight (default 16 MiB). */
  windowBytes?: number;
  /** Ask for a confirmation after this many unconfirmed bytes (default a quarter of the window, at most 4 MiB). */
  flushEveryBytes?: number;
  /** Give up when the target stays unreachable this long (default 120 s). */
  reconnectTimeoutMs?: number;
  /** Codec cache of each new connection (default: a fresh one, which keeps a reconnect in lockstep).
   *  A relay pair that also carries other streams shares its context here. */
  codecContext?: () => CodecContext;
}

interface Entry {
  seq: bigint;
  type: number;
  flags: number;
  offset: number;
  length: number;
  data?: Buffer;
  waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
}

export interface LinkStats {
  /** Decoded request bytes handed to the encoder (headers + payloads), including re-sends. */
  rawBytes: number;
  /** Bytes written to the TCP connection (what crosses the WAN), including re-sends. */
  wireBytes: number;
  /** Payload bytes queued by the copy loop (first sends only). */
  payloadBytes: number;
  /** Payload bytes sent again after a reconnect. */
  resentBytes: number;
  /** Payload bytes of re-sends skipped because the target already held them. */
  resumeSkippedBytes: number;
  reconnects: number;
  confirmedSeq: number;
}

export class TargetWriteError extends Error {}

export class SourceLink extends EventEmitter<{ up: []; down: [Error]; failed: [Error] }> {
  readonly o: LinkOptions;
  /** What the target holds, as far as the source knows (its index plus everything queued since). */
  expected: PageIndex;
  readonly stats: LinkStats = { rawBytes: 0, wireBytes: 0, payloadBytes: 0, resentBytes: 0, resumeSkippedBytes: 0, reconnects: 0, confirmedSeq: 0 };
  private socket: Socket | undefined;
  private encoder: StreamEncoder | undefined;
  private readonly queue: Entry[] = [];
  private nextSeq = 1n;
  private unconfirmed = 0;
  private sinceFlush = 0;
  private failure: Error | undefined;
  private closing = false;
  private roomWaiters: Array<() => void> = [];
  private connectedOnce = false;

  constructor(o: LinkOptions) {
    super();
    this.o = o;
    this.expected = new PageIndex(o.volumeBytes);
  }

  get up(): boolean {
    return this.socket !== undefined;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  get unconfirmedBytes(): number {
    return this.unconfirmed;
  }

  /** Connects (retrying until reconnectTimeoutMs) and receives the target's index. */
  async start(): Promise<void> {
    await this.connectLoop();
  }

  private async connectLoop(): Promise<void> {
    const deadline = Date.now() + (this.o.reconnectTimeoutMs ?? 120_000);
    let lastErr: Error | undefined;
    while (!this.closing && !this.failure) {
      try {
        await this.connectOnce();
        return;
      } catch (err) {
        lastErr = err as Error;
        if (err instanceof TargetWriteError) throw err;
        if (Date.now() > deadline) break;
        await delay(250);
      }
    }
    if (this.closing) return;
    const e = this.failure ?? new Error(`target agent ${this.o.host}:${this.o.port} unreachable: ${lastErr?.message ?? 'closed'}`);
    this.fail(e);
    throw e;
  }

  private connectOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: this.o.host, port: this.o.port });
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      let hello: P.TargetHello | undefined;
      const onError = (err: Error): void => {
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
      s.once('close', () => reject(new Error('target closed the connection during the hello')));
      s.once('connect', () => s.write(P.encodeHello({ volumeBytes: this.o.volumeBytes, volumeId: this.o.volumeId, codec: this.o.codec ?? 'relay', codecVersion: RELAY_CODEC_VERSION })));
      const onData = (chunk: Buffer): void => {
        buf = Buffer.concat([buf, chunk]);
        try {
          if (!hello) {
            const h = P.parseHello<P.TargetHello>(buf);
            if (!h) return;
            hello = h.value;
            buf = buf.subarray(h.used);
            if (!hello.ok) {
              s.destroy();
              reject(new TargetWriteError(`target refused: ${hello.error ?? 'unknown'}`));
              return;
            }
          }
          if (buf.length < hello.indexBytes) return;
          const index = PageIndex.parse(buf.subarray(0, hello.indexBytes));
          const rest = buf.subarray(hello.indexBytes);
          s.off('data', onData);
          s.removeAllListeners('error');
          s.removeAllListeners('close');
          this.attach(s, index);
          resolve();
          if (rest.length) this.onReplies(rest);
        } catch (err) {
          onError(err as Error);
        }
      };
      s.on('data', onData);
    });
  }

  private readonly replies = new P.ReplyParser();

  private attach(s: Socket, index: PageIndex): void {
    const first = !this.connectedOnce;
    this.connectedOnce = true;
    if (!first) this.stats.reconnects++;
    this.socket = s;
    this.expected = index;
    this.encoder = createEncoder(this.o.codec ?? 'relay', (b) => {
      this.stats.wireBytes += b.length;
      s.write(b);
    }, this.o.codecContext ? { context: this.o.codecContext() } : {});
    s.on('data', (d: Buffer) => this.onReplies(d));
    s.on('error', () => undefined);
    s.on('close', () => this.onClose(s));
    log.info('connected to target', { target: `${this.o.host}:${this.o.port}`, knownPages: index.knownPages(), queued: this.queue.length, reconnect: !first });
    // Re-send what is still unconfirmed, minus the pages the target already holds.
    const pending = this.queue.splice(0);
    for (const e of pending) this.resend(e);
    this.emit('up');
  }

  private onReplies(d: Buffer): void {
    try {
      for (const r of this.replies.push(d)) this.confirm(r);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private confirm(r: P.Reply): void {
    if (r.error !== 0) {
      this.fail(new TargetWriteError(`target write failed (errno ${r.error}) for request ${r.handle}`));
      return;
    }
    while (this.queue.length && this.queue[0].seq <= r.handle) {
      const e = this.queue.shift()!;
      if (e.type === P.CMD_WRITE || e.type === P.CMD_WRITE_ZEROES) this.unconfirmed -= e.length;
      for (const w of e.waiters) w.resolve();
    }
    this.stats.confirmedSeq = Number(r.handle);
    this.wake();
  }

  private onClose(s: Socket): void {
    if (this.socket !== s) return;
    this.socket = undefined;
    this.encoder = undefined;
    if (this.closing || this.failure) return;
    const err = new Error('connection to the target agent lost');
    log.warn('target connection lost; reconnecting', { queued: this.queue.length, unconfirmedBytes: this.unconfirmed });
    this.emit('down', err);
    this.connectLoop().catch(() => undefined);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    log.error('storage link failed', { error: err.message });
    for (const e of this.queue.splice(0)) for (const w of e.waiters) w.reject(err);
    this.socket?.destroy();
    this.wake();
    this.emit('failed', err);
  }

  private wake(): void {
    const ws = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of ws) w();
  }

  /** Waits until the window has room (or the link failed). */
  async room(): Promise<void> {
    const limit = this.o.windowBytes ?? 16 << 20;
    while (this.unconfirmed >= limit && !this.failure) await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.failure) throw this.failure;
  }

  /** Queues a write of page-aligned data; with fua, resolves once the target confirmed it. */
  write(offset: number, data: Buffer, fua = false): Promise<void> {
    return this.enqueue(P.CMD_WRITE, fua ? P.FLAG_FUA : 0, offset, data.length, data);
  }

  writeZeroes(offset: number, length: number, fua = false): Promise<void> {
    return this.enqueue(P.CMD_WRITE_ZEROES, fua ? P.FLAG_FUA : 0, offset, length);
  }

  /** Resolves once every request queued so far is durable on the target. */
  flush(): Promise<void> {
    return this.enqueue(P.CMD_FLUSH, 0, 0, 0);
  }

  private enqueue(type: number, flags: number, offset: number, length: number, data?: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const e: Entry = { seq: this.nextSeq++, type, flags, offset, length, data, waiters: [] };
    const needsReply = type === P.CMD_FLUSH || (flags & P.FLAG_FUA) !== 0;
    const p = needsReply ? new Promise<void>((resolve, reject) => e.waiters.push({ resolve, reject })) : Promise.resolve();
    if (type !== P.CMD_FLUSH) {
      this.unconfirmed += length;
      this.sinceFlush += length;
      this.stats.payloadBytes += type === P.CMD_WRITE ? length : 0;
      this.noteExpected(e);
    }
    this.queue.push(e);
    this.transmit(e);
    if (!needsReply && this.sinceFlush >= (this.o.flushEveryBytes ?? Math.min(4 << 20, (this.o.windowBytes ?? 16 << 20) / 4))) void this.flush().catch(() => undefined);
    if (needsReply) this.sinceFlush = 0;
    return p;
  }

  private noteExpected(e: Entry): void {
    if (e.type === P.CMD_WRITE && e.data && e.offset % PAGE === 0 && e.length % PAGE === 0) this.expected.setFromData(e.offset, e.data);
    else if (e.type === P.CMD_WRITE_ZEROES && e.offset % PAGE === 0 && e.length % PAGE === 0) {
      for (let p = e.offset / PAGE; p < (e.offset + e.length) / PAGE; p++) this.expected.set(p, ZERO_PAGE_KEY);
    } else {
      for (let p = Math.floor(e.offset / PAGE); p < Math.ceil((e.offset + e.length) / PAGE); p++) this.expected.forget(p);
    }
  }

  private transmit(e: Entry): void {
    const enc = this.encoder;
    if (!enc) return; // sent on reconnect
    const req = P.encodeRequest({ flags: e.flags, type: e.type, handle: e.seq, offset: e.offset, length: e.type === P.CMD_FLUSH ? 0 : e.length }, e.type === P.CMD_WRITE ? e.data : undefined);
    const before = enc.rawBytes;
    enc.write(req);
    this.stats.rawBytes += enc.rawBytes - before;
    if (e.type === P.CMD_FLUSH || (e.flags & P.FLAG_FUA) !== 0) enc.flush();
  }

  /** After a reconnect: sends an unconfirmed entry again, skipping pages the target holds. */
  private resend(e: Entry): void {
    const idx = this.expected;
    if (e.type === P.CMD_WRITE && e.data && e.offset % PAGE === 0 && e.length % PAGE === 0) {
      let keep = false;
      for (let i = 0; i < e.length; i += PAGE) {
        if (!idx.matches((e.offset + i) / PAGE, pageKey(e.data.subarray(i, i + PAGE)))) { keep = true; break; }
      }
      if (!keep && e.waiters.length === 0) {
        this.stats.resumeSkippedBytes += e.length;
        this.unconfirmed -= e.length;
        return;
      }
      if (keep) this.stats.resentBytes += e.length;
      else this.stats.resumeSkippedBytes += e.length;
    } else if (e.type === P.CMD_WRITE) {
      this.stats.resentBytes += e.length;
    }
    this.noteExpected(e);
    this.queue.push(e);
    this.transmit(e);
  }

  /** Closes the connection (pending requests are abandoned). */
  close(): void {
    this.closing = true;
    this.socket?.destroy();
    this.socket = undefined;
    this.wake();
  }
}
