// Framing between the two relays, and of offline encoded files (protocol version 3):
//
//   first frame of each direction (HELLO, or the CLOSE that refuses a link):
//       [u8 type][be32 session][be32 len][payload]
//   every later frame:
//       [u8 type][be32 session][be32 len][be32 crc][payload]
//
// The first frame keeps the header of versions 1 and 2, so relays of any version read each
// other's HELLO and refuse a mismatch with a clear reason. `crc` is a chained CRC-32: the CRC of
// the frame's type, session, length and payload, continued from the previous frame's crc (the
// first frame's bytes seed the chain). A frame's crc therefore vouches for everything before it in
// its direction: a damaged frame fails its own check, and a dropped, repeated or reordered one
// fails the check of the frame after it. (CRC-32, not a hash in the batch: it covers control
// frames too, costs ~0.03 ms per MB of stream here because it runs over wire bytes, and Node has it
// natively; see bench/relay-integrity.ts.) The end of a stream is explicit on top of that: FIN
// states a session's totals, and an offline file ends with END (see tools/offline.ts).
//
// One connection multiplexes many sessions; frames of all sessions are decoded in the order they
// were encoded, which is what keeps the shared cache in lockstep.
import zlib from 'node:zlib';
import { DecodeError } from './bytes.ts';

/** 4: link probe frames (PROBE/PROBE_ACK). 3: chained frame CRC-32, FIN/RFIN state the session's totals, files end with END. 2: cache
 *  references by slot + fingerprint, batches state their insert count. */
export const PROTOCOL_VERSION = 4;
export const FILE_MAGIC = Buffer.from('CNRELAY1', 'latin1');

export const F_HELLO = 0x01; // JSON Hello (session 0)
export const F_OPEN = 0x02; // JSON OpenInfo
export const F_DATA = 0x03; // packed batch
export const F_FIN = 0x04; // source finished sending: SessionTotals of the DATA frames sent
export const F_RDATA = 0x05; // return path bytes, receiver -> sender
export const F_RFIN = 0x06; // return path finished: be64 bytes sent back
export const F_CLOSE = 0x07; // JSON CloseInfo: the session is aborted
export const F_CREDIT = 0x08; // be32 bytes of output the receiver has written downstream
export const F_SEEDED = 0x09; // receiver -> sender (session 0): 16-byte digests of seeded content
export const F_END = 0x0a; // offline files only, the last frame (session 0): FileTotals
export const F_PROBE = 0x0b; // sender -> receiver (session 0): be32 sequence number + filler
export const F_PROBE_ACK = 0x0c; // receiver -> sender (session 0): the be32 sequence number it got
const F_LAST = F_PROBE_ACK;

/** Header of the first frame of a direction (the version-independent envelope). */
export const ENVELOPE_HEADER = 9;
/** Header of every later frame. */
export const FRAME_HEADER = 13;
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

/** A FIN's payload: how many DATA frames the session sent, and how many bytes they decode to. */
export interface SessionTotals {
  batches: number;
  bytes: number;
}

/** An END's payload: frames before it (HELLO included) and sessions opened in the file. */
export interface FileTotals {
  frames: number;
  sessions: number;
}

function be64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(v / 2 ** 32), 0);
  b.writeUInt32BE(v >>> 0, 4);
  return b;
}

function readBe64(b: Buffer, pos: number): number {
  return b.readUInt32BE(pos) * 2 ** 32 + b.readUInt32BE(pos + 4);
}

export function totalsPayload(t: SessionTotals): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.writeUInt32BE(t.batches, 0);
  be64(t.bytes).copy(b, 4);
  return b;
}

/** undefined when the payload is not a FIN's. */
export function parseTotals(p: Buffer): SessionTotals | undefined {
  return p.length === 12 ? { batches: p.readUInt32BE(0), bytes: readBe64(p, 4) } : undefined;
}

export function countPayload(bytes: number): Buffer {
  return be64(bytes);
}

/** An RFIN's byte count; undefined when malformed. */
export function parseCount(p: Buffer): number | undefined {
  return p.length === 8 ? readBe64(p, 0) : undefined;
}

export function fileTotalsPayload(t: FileTotals): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(t.frames, 0);
  b.writeUInt32BE(t.sessions, 4);
  return b;
}

export function parseFileTotals(p: Buffer): FileTotals | undefined {
  return p.length === 8 ? { frames: p.readUInt32BE(0), sessions: p.readUInt32BE(4) } : undefined;
}

/**
 * A damaged frame stream. `reason` is 'corrupt' (a check failed) or 'truncated' (the input
 * stopped inside a frame); `frame` is the 1-based number of the frame concerned (HELLO is 1).
 */
export class FrameError extends DecodeError {
  readonly frame: number;
  constructor(reason: 'corrupt' | 'truncated', frame: number, message: string) {
    super(reason, message);
    this.frame = frame;
  }
}

/** Writes one direction's frames: the first in the envelope, then with the chained CRC. */
export class FrameWriter {
  private crc = 0;
  private started: boolean;
  /** Frames written so far. */
  frames = 0;

  /** envelope: false for streams whose version was agreed elsewhere (the storage agents' HELLO):
   *  every frame then has the checked header, and the chain starts at 0. */
  constructor(opts: { envelope?: boolean } = {}) {
    this.started = opts.envelope === false;
  }

  /** The header of a frame whose payload is written separately (no copy of the payload); the
   *  payload may be given in parts, which the frame carries one after the other. */
  header(type: number, session: number, payload: Buffer | readonly Buffer[]): Buffer {
    const h = Buffer.allocUnsafe(this.started ? FRAME_HEADER : ENVELOPE_HEADER);
    this.fill(h, type, session, payload);
    return h;
  }

  /** A whole frame in one buffer. */
  frame(type: number, session: number, payload: Buffer = EMPTY): Buffer {
    const hl = this.started ? FRAME_HEADER : ENVELOPE_HEADER;
    const out = Buffer.allocUnsafe(hl + payload.length);
    payload.copy(out, hl);
    this.fill(out, type, session, payload);
    return out;
  }

  json(type: number, session: number, value: object): Buffer {
    return this.frame(type, session, Buffer.from(JSON.stringify(value)));
  }

  private fill(h: Buffer, type: number, session: number, payload: Buffer | readonly Buffer[]): void {
    const parts = Buffer.isBuffer(payload) ? [payload] : payload;
    let len = 0;
    for (const p of parts) len += p.length;
    if (len > MAX_FRAME) throw new RangeError(`frame too large (${len} bytes)`);
    h[0] = type;
    h.writeUInt32BE(session >>> 0, 1);
    h.writeUInt32BE(len, 5);
    let c = zlib.crc32(h.subarray(0, ENVELOPE_HEADER), this.started ? this.crc : 0);
    for (const p of parts) c = zlib.crc32(p, c);
    if (this.started) h.writeUInt32BE(c, ENVELOPE_HEADER);
    this.crc = c;
    this.started = true;
    this.frames++;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Incremental frame parser for one direction; verifies the CRC chain. read() returns the frames
 * that are complete and intact, plus the error that stopped it (after which the stream is
 * unusable: every later read returns that error).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private crc = 0;
  private started: boolean;
  private failed: FrameError | undefined;
  private readonly baseOffset: number;
  /** Intact frames read so far. */
  frames = 0;
  /** Stream offset (plus baseOffset) where the next frame starts. */
  offset: number;

  /** reuse: frames spread over several reads are joined in one buffer of the reader's, reused
   *  (no allocation per frame): their payloads are then valid only until the next read(). */
  private readonly reuse: boolean;
  private joined: Buffer = EMPTY;
  /** borrowed (implies reuse): each chunk is valid only during its read() (a socket reading into
   *  one reused buffer); what the reader keeps of it is copied into its own buffer. */
  private readonly borrowed: boolean;

  /** baseOffset: added to the byte offsets in error messages (e.g. the length of a file's magic). */
  constructor(opts: { envelope?: boolean; baseOffset?: number; reuse?: boolean; borrowed?: boolean } = {}) {
    this.started = opts.envelope === false;
    this.baseOffset = opts.baseOffset ?? 0;
    this.offset = this.baseOffset;
    this.borrowed = opts.borrowed ?? false;
    this.reuse = (opts.reuse ?? false) || this.borrowed;
  }

  /** borrowed: the held bytes (one view into `joined`) with the chunk appended, in `joined`. */
  private appendBorrowed(chunk: Buffer): Buffer {
    if (this.size === 0) return chunk; // parsed where it is; keepBorrowed() copies any rest
    const held = this.chunks[0];
    let off = held.byteOffset - this.joined.byteOffset;
    const need = this.size + chunk.length;
    if (off + need > this.joined.length) {
      // The frames of the previous read were handled: the held bytes can move (memmove) or grow.
      if (need <= this.joined.length) this.joined.copyWithin(0, off, off + this.size);
      else {
        const next = Buffer.allocUnsafeSlow(Math.max(need, 2 * this.joined.length, 1 << 20));
        held.copy(next, 0);
        this.joined = next;
      }
      off = 0;
    }
    chunk.copy(this.joined, off + this.size);
    return this.joined.subarray(off, off + need);
  }

  /** borrowed: the rest to keep, in `joined` (a rest inside the borrowed chunk is copied to its
   *  front: `joined` then holds nothing this read's frames refer to). */
  private keepBorrowed(rest: Buffer): Buffer {
    if (rest.buffer === this.joined.buffer) return rest;
    if (this.joined.length < rest.length) this.joined = Buffer.allocUnsafeSlow(Math.max(rest.length, 2 * this.joined.length, 1 << 20));
    rest.copy(this.joined, 0);
    return this.joined.subarray(0, rest.length);
  }

  /** The buffered chunks in one buffer: a new one, or (reuse) the reader's own. */
  private join(): Buffer {
    if (!this.reuse) return Buffer.concat(this.chunks, this.size);
    let into = this.joined;
    let at = 0;
    let first = 0;
    const c0 = this.chunks[0];
    if (c0.buffer === into.buffer && into.length >= this.size) {
      // The rest of the previous read lives in this buffer: move it to the front (memmove).
      into.copyWithin(0, c0.byteOffset - into.byteOffset, c0.byteOffset - into.byteOffset + c0.length);
      at = c0.length;
      first = 1;
    } else if (into.length < this.size) {
      into = this.joined = Buffer.allocUnsafeSlow(Math.max(this.size, 2 * into.length, 1 << 20));
    }
    for (let i = first; i < this.chunks.length; i++) { this.chunks[i].copy(into, at); at += this.chunks[i].length; }
    return into.subarray(0, this.size);
  }

  /** Complete frames; throws the FrameError that stops the stream (frames before it are lost: see read()). */
  push(chunk: Buffer): Frame[] {
    const r = this.read(chunk);
    if (r.error) throw r.error;
    return r.frames;
  }

  read(chunk: Buffer): { frames: Frame[]; error?: FrameError } {
    const frames: Frame[] = [];
    if (this.failed) return { frames, error: this.failed };
    if (this.borrowed) {
      const all = this.appendBorrowed(chunk);
      this.chunks = [all];
      this.size = all.length;
      if (this.size < this.firstFrameBytes()) { this.chunks = [this.keepBorrowed(all)]; return { frames }; }
    } else {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    // A frame spread over many reads is joined once, when it is complete (not on every read).
    if (this.chunks.length > 1 && this.size < this.firstFrameBytes()) return { frames };
    let buf = this.chunks.length === 1 ? this.chunks[0] : this.join();
    let pos = 0;
    for (;;) {
      const hl = this.started ? FRAME_HEADER : ENVELOPE_HEADER;
      if (buf.length - pos < hl) break;
      const type = buf[pos];
      const len = buf.readUInt32BE(pos + 5);
      const bad = badHeader(type, len);
      if (bad) { this.fail(bad); break; }
      if (buf.length - pos < hl + len) break;
      const payload = buf.subarray(pos + hl, pos + hl + len);
      const c = zlib.crc32(payload, zlib.crc32(buf.subarray(pos, pos + ENVELOPE_HEADER), this.started ? this.crc : 0));
      if (this.started && c !== buf.readUInt32BE(pos + ENVELOPE_HEADER)) { this.fail('crc mismatch'); break; }
      this.crc = c;
      this.started = true;
      frames.push({ type, session: buf.readUInt32BE(pos + 1), payload });
      pos += hl + len;
      this.frames++;
      this.offset += hl + len;
    }
    buf = buf.subarray(pos);
    this.chunks = buf.length && !this.failed ? [this.borrowed ? this.keepBorrowed(buf) : buf] : [];
    this.size = this.chunks.length ? buf.length : 0;
    return this.failed ? { frames, error: this.failed } : { frames };
  }

  /** The input ended here: an error if it stopped inside a frame. */
  end(): FrameError | undefined {
    if (this.failed || this.size === 0) return this.failed;
    const need = this.firstFrameBytes();
    const what = need > this.size ? `${this.size} of its ${need} bytes` : `${this.size} bytes`;
    this.failed = new FrameError('truncated', this.frames + 1, `truncated: frame ${this.frames + 1} at byte ${this.offset} is cut short (${what} present)`);
    return this.failed;
  }

  private fail(why: string): void {
    this.failed = new FrameError('corrupt', this.frames + 1, `corrupt frame ${this.frames + 1} at byte ${this.offset} (${why})`);
  }

  /** Bytes the first buffered frame needs (0 when its header is impossible: parse now, and fail). */
  private firstFrameBytes(): number {
    const hl = this.started ? FRAME_HEADER : ENVELOPE_HEADER;
    if (this.chunks[0].length < ENVELOPE_HEADER && this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    const c = this.chunks[0];
    if (c.length < ENVELOPE_HEADER) return hl;
    const len = c.readUInt32BE(5);
    if (badHeader(c[0], len)) return 0;
    return hl + len;
  }

  get buffered(): number {
    return this.size;
  }
}

function badHeader(type: number, len: number): string | undefined {
  if (type < F_HELLO || type > F_LAST) return `bad frame type 0x${type.toString(16)}`;
  if (len > MAX_FRAME) return `frame too large (${len} bytes)`;
  return undefined;
}

export function parseJson<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T;
}
