// Framing between the two relays (and of offline encoded files): [u8 type][be32 session][be32 len]
// [payload]. One connection multiplexes many sessions; frames of a session arrive in order, and
// frames of all sessions are decoded in the order they were encoded, which is what keeps the
// shared cache in lockstep.

export const PROTOCOL_VERSION = 2; // 2: cache references by slot + fingerprint, batches state their insert count
export const FILE_MAGIC = Buffer.from('CNRELAY1', 'latin1');

export const F_HELLO = 0x01; // JSON Hello (session 0)
export const F_OPEN = 0x02; // JSON OpenInfo
export const F_DATA = 0x03; // packed batch
export const F_FIN = 0x04; // source finished sending
export const F_RDATA = 0x05; // return path bytes, receiver -> sender
export const F_RFIN = 0x06; // return path finished
export const F_CLOSE = 0x07; // JSON CloseInfo: the session is aborted
export const F_CREDIT = 0x08; // be32 bytes of output the receiver has written downstream
export const F_SEEDED = 0x09; // receiver -> sender (session 0): 16-byte digests of seeded content

export const FRAME_HEADER = 9;
export const MAX_FRAME = 32 << 20;

export interface Hello {
  magic: 'cloudnet-relay';
  version: number;
  cacheBytes: number;
  role: 'sender' | 'receiver' | 'file';
  /** Receiver: how many seeded blocks it may announce (F_SEEDED). */
  seedSlots?: number;
}

export interface OpenInfo {
  mode: string;
  /** Which receiver-side target to connect to (a name from the receiver's config). */
  target?: string;
  label?: string;
}

export interface CloseInfo {
  reason: string;
  message: string;
}

export interface Frame {
  type: number;
  session: number;
  payload: Buffer;
}

export function encodeFrame(type: number, session: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  out[0] = type;
  out.writeUInt32BE(session >>> 0, 1);
  out.writeUInt32BE(payload.length, 5);
  payload.copy(out, FRAME_HEADER);
  return out;
}

export function frameHeader(type: number, session: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER);
  out[0] = type;
  out.writeUInt32BE(session >>> 0, 1);
  out.writeUInt32BE(len, 5);
  return out;
}

export function jsonFrame(type: number, session: number, value: object): Buffer {
  return encodeFrame(type, session, Buffer.from(JSON.stringify(value)));
}

export class FrameError extends Error {}

/** Incremental frame parser. Throws FrameError on an impossible header (the connection is unusable). */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    // A frame spread over many reads is joined once, when it is complete (not on every read).
    if (this.chunks.length > 1 && this.size < this.firstFrameBytes()) return frames;
    let buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    let pos = 0;
    while (buf.length - pos >= FRAME_HEADER) {
      const type = buf[pos];
      const len = buf.readUInt32BE(pos + 5);
      if (type < F_HELLO || type > F_SEEDED) throw new FrameError(`bad frame type 0x${type.toString(16)}`);
      if (len > MAX_FRAME) throw new FrameError(`frame too large (${len})`);
      if (buf.length - pos < FRAME_HEADER + len) break;
      frames.push({ type, session: buf.readUInt32BE(pos + 1), payload: buf.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + len) });
      pos += FRAME_HEADER + len;
    }
    buf = buf.subarray(pos);
    this.chunks = buf.length ? [buf] : [];
    this.size = buf.length;
    return frames;
  }

  /** Bytes the first buffered frame needs (0 when its header is impossible: parse now, and fail). */
  private firstFrameBytes(): number {
    const c = this.chunks[0];
    if (c.length < FRAME_HEADER) return FRAME_HEADER;
    const len = c.readUInt32BE(5);
    if (c[0] < F_HELLO || c[0] > F_SEEDED || len > MAX_FRAME) return 0;
    return FRAME_HEADER + len;
  }

  get buffered(): number {
    return this.size;
  }
}

export function parseJson<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T;
}
