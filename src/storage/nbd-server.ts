// A minimal NBD server (fixed newstyle handshake, NBD_OPT_GO/EXPORT_NAME, simple replies) on a
// unix socket: the target of QEMU's write-blocking mirror in synchronous mode. It serves one
// export whose writes are handed to a callback; the reply — and with it the guest's write
// completion — waits until the callback resolves, i.e. until the target agent confirmed the write.
import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { logger } from '../util/log.ts';
import * as P from './protocol.ts';

const log = logger('storage-nbd');

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_EXPORT_NAME = 1;
const OPT_ABORT = 2;
const OPT_LIST = 3;
const OPT_INFO = 6;
const OPT_GO = 7;
const REP_ACK = 1;
const REP_SERVER = 2;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_UNKNOWN = 0x80000006;
const INFO_EXPORT = 0;
const INFO_BLOCK_SIZE = 3;
const TX_FLAGS = 1 /* HAS_FLAGS */ | 4 /* SEND_FLUSH */ | 8 /* SEND_FUA */ | 32 /* SEND_TRIM */ | 64; /* SEND_WRITE_ZEROES */

export interface NbdHandler {
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
  flush(): Promise<void>;
  /** Optional: the mirror never reads its target. */
  read?(offset: number, length: number): Promise<Buffer>;
}

export interface NbdStats {
  writes: number;
  bytes: number;
  /** Sum and max of request→reply times of writes (ms). */
  writeMsTotal: number;
  writeMsMax: number;
}

export class NbdServer {
  readonly path: string;
  readonly exportName: string;
  readonly size: number;
  readonly stats: NbdStats = { writes: 0, bytes: 0, writeMsTotal: 0, writeMsMax: 0 };
  private readonly handler: NbdHandler;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(path: string, exportName: string, size: number, handler: NbdHandler) {
    this.path = path;
    this.exportName = exportName;
    this.size = size;
    this.handler = handler;
  }

  async listen(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    const server = createServer((s) => this.session(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (existsSync(this.path)) unlinkSync(this.path);
  }

  private session(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    const greet = Buffer.alloc(18);
    greet.writeBigUInt64BE(NBDMAGIC, 0);
    greet.writeBigUInt64BE(IHAVEOPT, 8);
    greet.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    s.write(greet);
    let buf = Buffer.alloc(0);
    let stage: 'flags' | 'options' | 'transmission' = 'flags';
    let noZeroes = false;
    const parser = new P.RequestParser();
    s.on('data', (chunk: Buffer) => {
      try {
        if (stage === 'transmission') {
          for (const r of parser.push(chunk)) this.request(s, r);
          return;
        }
        buf = Buffer.concat([buf, chunk]);
        if (stage === 'flags') {
          if (buf.length < 4) return;
          noZeroes = (buf.readUInt32BE(0) & FLAG_NO_ZEROES) !== 0;
          buf = buf.subarray(4);
          stage = 'options';
        }
        while (stage === 'options' && buf.length >= 16) {
          if (buf.readBigUInt64BE(0) !== IHAVEOPT) throw new P.ProtocolError('bad option magic');
          const opt = buf.readUInt32BE(8);
          const len = buf.readUInt32BE(12);
          if (len > 1 << 16) throw new P.ProtocolError('option too long');
          if (buf.length < 16 + len) return;
          const data = buf.subarray(16, 16 + len);
          buf = buf.subarray(16 + len);
          if (this.option(s, opt, data, noZeroes)) {
            stage = 'transmission';
            if (buf.length) for (const r of parser.push(buf)) this.request(s, r);
            buf = Buffer.alloc(0);
          }
        }
      } catch (err) {
        log.warn('NBD session error', { error: String(err) });
        s.destroy();
      }
    });
  }

  private optReply(s: Socket, opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type >>> 0, 12);
    h.writeUInt32BE(data.length, 16);
    s.write(Buffer.concat([h, data]));
  }

  /** Handles one option; returns true when transmission starts. */
  private option(s: Socket, opt: number, data: Buffer, noZeroes: boolean): boolean {
    switch (opt) {
      case OPT_EXPORT_NAME: {
        const out = Buffer.alloc(noZeroes ? 10 : 134);
        out.writeBigUInt64BE(BigInt(this.size), 0);
        out.writeUInt16BE(TX_FLAGS, 8);
        s.write(out);
        return true;
      }
      case OPT_ABORT:
        this.optReply(s, opt, REP_ACK);
        s.end();
        return false;
      case OPT_LIST: {
        const name = Buffer.from(this.exportName);
        const d = Buffer.alloc(4 + name.length);
        d.writeUInt32BE(name.length, 0);
        name.copy(d, 4);
        this.optReply(s, opt, REP_SERVER, d);
        this.optReply(s, opt, REP_ACK);
        return false;
      }
      case OPT_INFO:
      case OPT_GO: {
        const n = data.length >= 4 ? data.readUInt32BE(0) : -1;
        const name = n >= 0 && data.length >= 4 + n ? data.toString('utf8', 4, 4 + n) : undefined;
        if (name === undefined || (name !== '' && name !== this.exportName)) {
          this.optReply(s, opt, REP_ERR_UNKNOWN);
          return false;
        }
        const info = Buffer.alloc(12);
        info.writeUInt16BE(INFO_EXPORT, 0);
        info.writeBigUInt64BE(BigInt(this.size), 2);
        info.writeUInt16BE(TX_FLAGS, 10);
        this.optReply(s, opt, REP_INFO, info);
        const bs = Buffer.alloc(14);
        bs.writeUInt16BE(INFO_BLOCK_SIZE, 0);
        bs.writeUInt32BE(1, 2);
        bs.writeUInt32BE(4096, 6);
        bs.writeUInt32BE(P.MAX_WRITE, 10);
        this.optReply(s, opt, REP_INFO, bs);
        this.optReply(s, opt, REP_ACK);
        return opt === OPT_GO;
      }
      default:
        this.optReply(s, opt, REP_ERR_UNSUP);
        return false;
    }
  }

  private request(s: Socket, r: P.Request): void {
    const fua = (r.flags & P.FLAG_FUA) !== 0;
    const t0 = performance.now();
    let op: Promise<Buffer | void>;
    switch (r.type) {
      case P.CMD_WRITE:
        op = this.handler.write(r.offset, r.data!, fua).then(() => {
          const ms = performance.now() - t0;
          this.stats.writes++;
          this.stats.bytes += r.length;
          this.stats.writeMsTotal += ms;
          this.stats.writeMsMax = Math.max(this.stats.writeMsMax, ms);
        });
        break;
      case P.CMD_WRITE_ZEROES:
      case P.CMD_TRIM:
        op = this.handler.writeZeroes(r.offset, r.length, fua);
        break;
      case P.CMD_FLUSH:
        op = this.handler.flush();
        break;
      case P.CMD_READ:
        op = this.handler.read ? this.handler.read(r.offset, r.length) : Promise.reject(Object.assign(new Error('read not supported'), { errno: P.EINVAL }));
        break;
      case P.CMD_DISC:
        s.end();
        return;
      default:
        op = Promise.reject(Object.assign(new Error(`command ${r.type} not supported`), { errno: P.EINVAL }));
    }
    op.then(
      (data) => { if (!s.destroyed) s.write(P.encodeReply({ error: 0, handle: r.handle }, data instanceof Buffer ? data : undefined)); },
      (err: unknown) => {
        log.warn('NBD request failed', { type: r.type, offset: r.offset, error: String(err) });
        if (!s.destroyed) s.write(P.encodeReply({ error: (err as { errno?: number }).errno ?? P.EIO, handle: r.handle }));
      },
    );
  }
}
