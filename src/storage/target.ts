// Target agent: accepts the source agent's stream, applies it to the target volume strictly in
// order, and confirms durability (fdatasync) in replies to FLUSH and FUA writes. Its page index
// (key per 4 KiB page) is sent to every connecting source, so a source that reconnects — after a
// dropped link or a restarted target — skips every page the volume already holds.
//
// Index durability: the index is saved on clean shutdown and deleted while the agent runs; after a
// crash it is rebuilt from the volume itself, which is the truth (a local read, no WAN bytes).
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { CodecContext } from '../relay/codec/index.ts';
import { logger } from '../util/log.ts';
import { codecMismatch, createDecoder, type CodecName, type StreamDecoder } from './codec.ts';
import { PAGE } from './extents.ts';
import { PageIndex, pageKey, ZERO_PAGE_KEY } from './index-file.ts';
import * as P from './protocol.ts';
import { sha256File, Volume } from './volume.ts';

const log = logger('storage-target');

export interface TargetAgentOptions {
  volumePath: string;
  /** Default `<volume>.cnidx`. */
  indexPath?: string;
  host?: string;
  port?: number;
  /** Codec cache of each new connection (default: fresh; see LinkOptions.codecContext). */
  codecContext?: () => CodecContext;
}

export interface TargetStatus {
  role: 'target';
  volumePath: string;
  volumeBytes?: number;
  volumeId?: string;
  connected: boolean;
  connections: number;
  knownPages: number;
  bytesReceivedWire: number;
  bytesApplied: number;
  writes: number;
  commits: number;
  lastError?: string;
}

export class TargetAgent {
  readonly o: TargetAgentOptions;
  private server: Server | undefined;
  private volume: Volume | undefined;
  private index: PageIndex | undefined;
  private volumeId: string | undefined;
  private current: Socket | undefined;
  private readonly stats = { connections: 0, bytesReceivedWire: 0, bytesApplied: 0, writes: 0, commits: 0, lastError: undefined as string | undefined };

  constructor(o: TargetAgentOptions) {
    this.o = o;
  }

  get indexPath(): string {
    return this.o.indexPath ?? `${this.o.volumePath}.cnidx`;
  }

  private get metaPath(): string {
    return `${this.o.volumePath}.cnmeta`;
  }

  async listen(): Promise<number> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port ?? 0, this.o.host ?? '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  status(): TargetStatus {
    return {
      role: 'target',
      volumePath: this.o.volumePath,
      ...(this.volume ? { volumeBytes: this.volume.bytes } : {}),
      ...(this.volumeId ? { volumeId: this.volumeId } : {}),
      connected: this.current !== undefined,
      knownPages: this.index?.knownPages() ?? 0,
      ...this.stats,
    };
  }

  /** The index as PageIndex.serialize() bytes (for seeding a relay cache), if a volume is open. */
  indexBytes(): Buffer | undefined {
    return this.index?.serialize();
  }

  /** Opens (or creates) the volume for a source disk of `bytes`; idempotent for the same disk. */
  private open(bytes: number, volumeId: string): void {
    if (this.volume) {
      if (this.volume.bytes !== bytes || this.volumeId !== volumeId) throw new Error(`target volume already serves disk ${this.volumeId} (${this.volume.bytes} bytes)`);
      return;
    }
    const meta = existsSync(this.metaPath) ? (JSON.parse(readFileSync(this.metaPath, 'utf8')) as { volumeId?: string }) : undefined;
    if (meta?.volumeId && meta.volumeId !== volumeId) throw new Error(`target volume ${this.o.volumePath} holds disk ${meta.volumeId}, not ${volumeId}`);
    const volume = new Volume(this.o.volumePath, bytes);
    let index: PageIndex | undefined;
    if (volume.fresh) index = PageIndex.zeroed(bytes);
    else {
      try {
        const saved = PageIndex.load(this.indexPath);
        if (saved && saved.volumeBytes === bytes) index = saved;
      } catch (err) {
        log.warn('ignoring unreadable index', { path: this.indexPath, error: String(err) });
      }
      if (!index) {
        const t0 = Date.now();
        index = volume.scanIndex();
        log.info('rebuilt the index from the volume', { pages: index.pages, ms: Date.now() - t0 });
      }
    }
    // From now on the saved index may go stale: remove it so that a crash forces a rescan.
    if (existsSync(this.indexPath)) unlinkSync(this.indexPath);
    writeFileSync(this.metaPath, JSON.stringify({ volumeId }));
    this.volume = volume;
    this.index = index;
    this.volumeId = volumeId;
  }

  private accept(s: Socket): void {
    this.stats.connections++;
    s.setNoDelay(true);
    if (this.current) this.current.destroy(); // a new connection from the source supersedes the old one
    this.current = s;
    let hello: P.SourceHello | undefined;
    let pending = Buffer.alloc(0);
    let decoder: StreamDecoder | undefined;
    const parser = new P.RequestParser();
    const fail = (err: unknown): void => {
      this.stats.lastError = err instanceof Error ? err.message : String(err);
      log.warn('source connection failed', { error: this.stats.lastError });
      s.destroy();
    };
    s.on('data', (chunk: Buffer) => {
      try {
        this.stats.bytesReceivedWire += chunk.length;
        if (!hello) {
          pending = Buffer.concat([pending, chunk]);
          const h = P.parseHello<P.SourceHello>(pending);
          if (!h) return;
          hello = h.value;
          chunk = pending.subarray(h.used);
          pending = Buffer.alloc(0);
          try {
            const mismatch = codecMismatch(hello.codec === 'none' ? 'none' : 'relay', hello.codecVersion);
            if (mismatch) throw new Error(mismatch);
            this.open(hello.volumeBytes, hello.volumeId);
          } catch (err) {
            s.end(P.encodeHello({ ok: false, error: (err as Error).message, volumeBytes: 0, indexBytes: 0 }));
            return;
          }
          const idx = this.index!.serialize();
          const codec: CodecName = hello.codec === 'none' ? 'none' : 'relay';
          decoder = createDecoder(codec, this.o.codecContext ? { context: this.o.codecContext() } : {});
          s.write(Buffer.concat([P.encodeHello({ ok: true, volumeBytes: hello.volumeBytes, indexBytes: idx.length }), idx]));
          log.info('source connected', { volumeId: hello.volumeId, codec, knownPages: this.index!.knownPages() });
        }
        if (!decoder || chunk.length === 0) return;
        const replies: P.Reply[] = [];
        for (const raw of decoder.push(chunk)) {
          for (const req of parser.push(raw)) {
            const r = this.apply(req);
            if (r) replies.push(r);
          }
        }
        if (replies.length) {
          if (replies.some((r) => r.error === 0)) this.commit();
          s.write(Buffer.concat(replies.map((r) => P.encodeReply(r))));
        }
      } catch (err) {
        fail(err);
      }
    });
    s.on('error', (err) => fail(err));
    s.on('close', () => {
      if (this.current === s) this.current = undefined;
    });
  }

  /** Applies one request; returns the reply it needs, if any. */
  private apply(req: P.Request): P.Reply | undefined {
    const v = this.volume!;
    const idx = this.index!;
    try {
      switch (req.type) {
        case P.CMD_WRITE: {
          const data = req.data!;
          v.write(req.offset, data);
          this.rekey(req.offset, data.length, data);
          this.stats.writes++;
          this.stats.bytesApplied += data.length;
          return req.flags & P.FLAG_FUA ? { error: 0, handle: req.handle } : undefined;
        }
        case P.CMD_WRITE_ZEROES:
        case P.CMD_TRIM: {
          const zero = Buffer.alloc(Math.min(req.length, 1 << 20));
          for (let off = 0; off < req.length; off += zero.length) v.write(req.offset + off, zero.subarray(0, Math.min(zero.length, req.length - off)));
          this.rekey(req.offset, req.length);
          this.stats.bytesApplied += req.length;
          return req.flags & P.FLAG_FUA ? { error: 0, handle: req.handle } : undefined;
        }
        case P.CMD_FLUSH:
          return { error: 0, handle: req.handle };
        default:
          return { error: P.EINVAL, handle: req.handle };
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.stats.lastError = `write at ${req.offset} failed: ${(err as Error).message}`;
      log.error('target write failed', { offset: req.offset, length: req.length, error: this.stats.lastError });
      // Pages whose write failed hold unknown bytes now.
      for (let p = Math.floor(req.offset / PAGE); p < Math.ceil((req.offset + req.length) / PAGE) && p < idx.pages; p++) idx.forget(p);
      return { error: code === 'ENOSPC' ? P.ENOSPC : code === 'EINVAL' ? P.EINVAL : P.EIO, handle: req.handle };
    }
  }

  /** Updates the keys of the pages a write touched (re-reading partially written pages). */
  private rekey(offset: number, length: number, data?: Buffer): void {
    const idx = this.index!;
    const first = Math.floor(offset / PAGE);
    const last = Math.ceil((offset + length) / PAGE);
    for (let p = first; p < last; p++) {
      const start = p * PAGE;
      if (data && start >= offset && start + PAGE <= offset + length) idx.set(p, pageKey(data.subarray(start - offset, start - offset + PAGE)));
      else if (!data && start >= offset && start + PAGE <= offset + length) idx.set(p, ZERO_PAGE_KEY);
      else idx.set(p, pageKey(this.volume!.read(start, PAGE)));
    }
  }

  private commit(): void {
    this.volume!.sync();
    this.stats.commits++;
  }

  /** SHA-256 of the whole target volume (call when the source is quiescent). */
  async checksum(): Promise<string> {
    if (!this.volume) throw new Error('no volume open yet');
    return sha256File(this.o.volumePath, this.volume.bytes);
  }

  /** Stops listening, closes the volume and saves the index (a clean shutdown). */
  async close(): Promise<void> {
    this.current?.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.volume && this.index) {
      this.volume.sync();
      this.index.save(this.indexPath);
      this.volume.close();
      this.volume = undefined;
    }
  }
}
