// Wire format of the storage stream. After a JSON hello in each direction, the source sends NBD
// transmission-phase requests (WRITE, WRITE_ZEROES, FLUSH) and the target answers with NBD simple
// replies. Using NBD requests on purpose: the relay codec already understands them (keyed 4 KiB
// pages, XOR deltas against a block's previous version, a content cache), so the same stream is
// deduplicated and compressed whether it is encoded in-process or carried by a relay pair, and
// KubeVirt's own NBD disk stream later hits the same cache entries.
//
// Acknowledgement: the target replies to FLUSH and to FUA writes only, after fdatasync and after
// persisting its index; since it applies requests in order, a reply confirms every earlier one.

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_WRITE_ZEROES = 6;
export const FLAG_FUA = 1;
export const REQUEST_HEADER = 28;
export const REPLY_HEADER = 16;
/** Largest write the target accepts in one request. */
export const MAX_WRITE = 32 << 20;

export const EIO = 5;
export const EINVAL = 22;
export const ENOSPC = 28;

export interface Request {
  flags: number;
  type: number;
  handle: bigint;
  offset: number;
  length: number;
  /** WRITE payload. */
  data?: Buffer;
}

export interface Reply {
  error: number;
  handle: bigint;
}

export function encodeRequest(r: Omit<Request, 'data'>, data?: Buffer): Buffer {
  const h = Buffer.alloc(REQUEST_HEADER);
  h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(r.flags, 4);
  h.writeUInt16BE(r.type, 6);
  h.writeBigUInt64BE(r.handle, 8);
  h.writeBigUInt64BE(BigInt(r.offset), 16);
  h.writeUInt32BE(r.length, 24);
  return data ? Buffer.concat([h, data]) : h;
}

export function encodeReply(r: Reply, data?: Buffer): Buffer {
  const h = Buffer.alloc(REPLY_HEADER);
  h.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  h.writeUInt32BE(r.error, 4);
  h.writeBigUInt64BE(r.handle, 8);
  return data ? Buffer.concat([h, data]) : h;
}

export class ProtocolError extends Error {}

/** Accumulates bytes and hands out whole units. */
class Accumulator {
  protected chunks: Buffer[] = [];
  protected size = 0;

  protected append(b: Buffer): void {
    if (b.length) {
      this.chunks.push(b);
      this.size += b.length;
    }
  }

  protected peek(n: number): Buffer {
    if (this.chunks.length > 1 && this.chunks[0].length < n) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all];
    }
    return this.chunks[0].subarray(0, n);
  }

  protected take(n: number): Buffer {
    const out = Buffer.from(this.peek(n));
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.size -= n;
    return out;
  }
}

/** Incremental parser of NBD requests (with WRITE payloads). */
export class RequestParser extends Accumulator {
  private header: Omit<Request, 'data'> | undefined;

  push(b: Buffer): Request[] {
    this.append(b);
    const out: Request[] = [];
    for (;;) {
      if (!this.header) {
        if (this.size < REQUEST_HEADER) return out;
        const h = this.take(REQUEST_HEADER);
        if (h.readUInt32BE(0) !== NBD_REQUEST_MAGIC) throw new ProtocolError('bad NBD request magic');
        this.header = {
          flags: h.readUInt16BE(4),
          type: h.readUInt16BE(6),
          handle: h.readBigUInt64BE(8),
          offset: Number(h.readBigUInt64BE(16)),
          length: h.readUInt32BE(24),
        };
        if (this.header.type === CMD_WRITE && this.header.length > MAX_WRITE) throw new ProtocolError(`write of ${this.header.length} bytes is too large`);
      }
      const h = this.header;
      if (h.type === CMD_WRITE) {
        if (this.size < h.length) return out;
        out.push({ ...h, data: this.take(h.length) });
      } else {
        out.push(h);
      }
      this.header = undefined;
    }
  }
}

/** Incremental parser of simple replies without payload. */
export class ReplyParser extends Accumulator {
  push(b: Buffer): Reply[] {
    this.append(b);
    const out: Reply[] = [];
    while (this.size >= REPLY_HEADER) {
      const h = this.take(REPLY_HEADER);
      if (h.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw new ProtocolError('bad NBD reply magic');
      out.push({ error: h.readUInt32BE(4), handle: h.readBigUInt64BE(8) });
    }
    return out;
  }
}

// ---- hello: 'CNST' u32 length, JSON (then, from the target, u32 length + the index bytes)

const HELLO_MAGIC = 'CNST';

export interface SourceHello {
  volumeBytes: number;
  /** Identifies the disk being replicated; a target refuses a different one on the same volume. */
  volumeId: string;
  codec: 'relay' | 'none';
  /** The relay frame format of codec 'relay' (its PROTOCOL_VERSION; absent before version 3). */
  codecVersion?: number;
}

export interface TargetHello {
  ok: boolean;
  error?: string;
  volumeBytes: number;
  /** Length of the index that follows (PageIndex.serialize()). */
  indexBytes: number;
}

export function encodeHello(value: SourceHello | TargetHello): Buffer {
  const json = Buffer.from(JSON.stringify(value));
  const h = Buffer.alloc(8);
  h.write(HELLO_MAGIC, 0, 'latin1');
  h.writeUInt32BE(json.length, 4);
  return Buffer.concat([h, json]);
}

/** Parses a hello at the start of `buf`; returns undefined while incomplete. */
export function parseHello<T>(buf: Buffer): { value: T; used: number } | undefined {
  if (buf.length < 8) return undefined;
  if (buf.toString('latin1', 0, 4) !== HELLO_MAGIC) throw new ProtocolError('not a cloudnet storage stream');
  const n = buf.readUInt32BE(4);
  if (n > 1 << 20) throw new ProtocolError('hello too large');
  if (buf.length < 8 + n) return undefined;
  return { value: JSON.parse(buf.toString('utf8', 8, 8 + n)) as T, used: 8 + n };
}
