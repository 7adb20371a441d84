// Batch container: [u8 method][varint rawLen][varint opsLen][varint inserts+1][payload]. method 0
// = ops stored, 1 = ops zstd-compressed. `inserts` is how many cache inserts the batch makes (0 in
// the field = not stated): a receiver that cannot decode the batch still advances its cache by
// that many slots, which keeps the slot numbering of the lockstep cache aligned. A batch whose
// zstd output is not smaller is stored, so the wire never carries more than the ops plus a few
// bytes.
import zlib from 'node:zlib';
import { DecodeError, OpReader, OpWriter } from './bytes.ts';
import { MAX_BATCH_OPS, MAX_BATCH_RAW } from './ops.ts';

export const METHOD_STORED = 0;
export const METHOD_ZSTD = 1;

/** zstd at `level`, as a Buffer of its own. */
export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return Buffer.from(zstdCompressView(data, level));
}

function zstdCompressSync(data: Uint8Array, level: number): Buffer {
  return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
}

/**
 * One zstd compressor per level, kept for the process (the native handle inside Node's
 * ZstdCompress stream, as BatchUnpacker does for decompression), writing into one reused output
 * buffer. zstdCompressSync builds a stream object and a fresh zstd context per call (allocating
 * and clearing its tables) and gathers its output in 16 KiB chunks: measured on the recorded
 * streams' batches, the kept context costs 10-13 % less CPU at levels 1 and 3, the same bytes
 * within 0.3 %. Each call is one whole frame: the context starts the next frame by itself, keeps
 * its level, and learns the frame's size from the first ZSTD_e_end call (so the frame states its
 * content size). The output buffer is always larger than zstd's bound for the input, so one call
 * completes the frame with room to spare: never a second call after the end, which would start
 * another, empty frame (see BatchUnpacker).
 */
class KeptCompressor {
  private out = Buffer.allocUnsafeSlow(1 << 20);
  private z: ZstdInternals | undefined;
  private readonly level: number;

  constructor(level: number) {
    this.level = level;
    this.z = this.create();
  }

  private create(): ZstdInternals | undefined {
    const z = zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: this.level } }) as unknown as ZstdInternals;
    if (typeof z._handle?.writeSync !== 'function' || !(z._writeState instanceof Uint32Array)) return undefined;
    z.on('error', () => undefined); // seen synchronously through `destroyed` below
    return z;
  }

  /** The compressed frame: a view into this compressor's buffer, valid until its next call. */
  compress(data: Uint8Array): Buffer {
    const bound = zstdBound(data.length);
    if (this.out.length < bound) this.out = Buffer.allocUnsafeSlow(Math.max(bound, this.out.length * 2));
    const n = this.compressInto(data, this.out);
    return n === undefined ? zstdCompressSync(data, this.level) : this.out.subarray(0, n);
  }

  /** Compresses into `out` (at least zstdBound(data.length) long); the frame's length, or
   *  undefined when the kept context is not available or failed (the caller compresses otherwise). */
  compressInto(data: Uint8Array, out: Uint8Array): number | undefined {
    const z = this.z;
    if (!z?._handle || out.length < zstdBound(data.length)) return undefined;
    z._handle.writeSync(zlib.constants.ZSTD_e_end, data, 0, data.length, out, 0, out.length);
    if (z.destroyed || !z._handle || z._writeState[1] !== 0 || z._writeState[0] === 0) {
      // Never seen; the context's state is unknown now, so it is replaced.
      if (!z.destroyed) z.destroy();
      this.z = this.create();
      return undefined;
    }
    return out.length - z._writeState[0];
  }
}

/** An output size that always holds one whole zstd frame of `n` input bytes (> ZSTD_compressBound(n)). */
export function zstdBound(n: number): number {
  return n + (n >>> 7) + (64 << 10);
}

const kept = new Map<number, KeptCompressor>();

/** zstd at `level`: a view valid until the next call at the same level (consume it at once). */
export function zstdCompressView(data: Uint8Array, level: number): Buffer {
  let c = kept.get(level);
  if (!c) kept.set(level, c = new KeptCompressor(level));
  return c.compress(data);
}

/**
 * zstd at `level` into `out` (at least zstdBound(data.length) long) with the kept context of that
 * level: the frame's length in `out`. For a caller that owns its output buffers (the sender's
 * compression worker writes into shared memory the main thread then sends from).
 */
export function zstdCompressInto(data: Uint8Array, level: number, out: Uint8Array): number {
  let c = kept.get(level);
  if (!c) kept.set(level, c = new KeptCompressor(level));
  const n = c.compressInto(data, out);
  if (n !== undefined) return n;
  const frame = zstdCompressSync(data, level);
  if (frame.length > out.length) throw new RangeError(`zstd frame of ${frame.length} bytes exceeds the ${out.length}-byte output`);
  out.set(frame);
  return frame.length;
}

/** level 0 = store. Returns the packed batch. `inserts` < 0: not stated. */
export function packBatch(ops: Buffer, rawLen: number, level: number, compressed?: Buffer, inserts = -1): Buffer {
  let payload = ops;
  let method = METHOD_STORED;
  if (compressed === undefined && level !== 0) compressed = zstdCompressView(ops, level); // copied below
  if (compressed && compressed.length < ops.length) {
    payload = compressed;
    method = METHOD_ZSTD;
  }
  const h = batchHeader(method, rawLen, ops.length, inserts);
  const out = Buffer.allocUnsafe(h.length + payload.length);
  h.copy(out, 0);
  payload.copy(out, h.length);
  return out;
}

/** The container's header alone: the live sender writes it and the payload as separate buffers
 *  (no copy of the payload into a packed batch). `inserts` < 0: not stated. */
export function batchHeader(method: number, rawLen: number, opsLen: number, inserts = -1): Buffer {
  const h = new OpWriter(32);
  h.u8(method);
  h.varint(rawLen);
  h.varint(opsLen);
  h.varint(inserts + 1);
  return h.buf.subarray(0, h.len);
}

export interface BatchHeader {
  method: number;
  rawLen: number;
  opsLen: number;
  /** Cache inserts the batch makes; -1 when not stated. */
  inserts: number;
  /** Where the payload starts. */
  pos: number;
}

export function readBatchHeader(frame: Buffer): BatchHeader {
  const r = new OpReader(frame);
  const method = r.u8();
  const rawLen = r.varint();
  const opsLen = r.varint();
  const inserts = r.varint() - 1;
  if (rawLen > MAX_BATCH_RAW || opsLen > MAX_BATCH_OPS) throw new DecodeError('corrupt', 'batch exceeds limits');
  return { method, rawLen, opsLen, inserts, pos: r.pos };
}

/** The batch's cache insert count, or -1 when the header is unreadable or does not state it. */
export function batchInserts(frame: Buffer): number {
  try {
    return readBatchHeader(frame).inserts;
  } catch {
    return -1;
  }
}

/** What a ZstdDecompress stream has inside (Node 24): a native handle that writes into a given buffer. */
interface ZstdInternals {
  _handle: { writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void; reset(): void } | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  destroy(): unknown;
  errored: Error | null;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

function directDecompressor(): ZstdInternals | undefined {
  const z = zlib.createZstdDecompress() as unknown as ZstdInternals;
  if (typeof z._handle?.writeSync !== 'function' || typeof z._handle.reset !== 'function' || !(z._writeState instanceof Uint32Array)) return undefined;
  z.on('error', () => undefined); // reported synchronously through `errored` below
  return z;
}

/** The frame zstd writes for no input (no checksum, content size 0, one empty raw block). */
const EMPTY_ZSTD_FRAME = Buffer.from('28b52ffd2000010000', 'hex');

function onlyEmptyFrames(buf: Buffer, from: number): boolean {
  const n = EMPTY_ZSTD_FRAME.length;
  if ((buf.length - from) % n !== 0) return false;
  for (let at = from; at < buf.length; at += n) if (EMPTY_ZSTD_FRAME.compare(buf, at, at + n) !== 0) return false;
  return true;
}

/**
 * Unpacks batches into one reused buffer: zstd writes the ops straight into it, so a batch costs
 * no allocation and no fresh page faults (zstdDecompressSync allocates its output per call: ~35 %
 * more CPU per batch, measured). Uses the native handle inside Node's ZstdDecompress stream; if a
 * Node version lacks it, `direct` is false and zstdDecompressSync is used instead.
 *
 * A payload may end with a second, empty zstd frame: Node's async zstdCompress, which the live
 * sender uses, appends one (9 bytes) whenever the compressed output ends exactly at the end of one of its 16 KiB
 * output chunks (it calls the compressor once more with ZSTD_e_end after the frame is complete,
 * and zstd starts a new frame). One native call stops at the end of a frame, so an unpacker that
 * made one call saw input left over and rejected the batch ("decompressed batch length
 * mismatch"): about one batch in 16 384, i.e. now and then in a long 4-VM run. zstdDecompressSync
 * took it (its output chunk fills at the end of the first frame, so it calls zstd again).
 * CLOUDNET_RELAY_DIRECT_ZSTD=0 selects zstdDecompressSync instead.
 */
export class BatchUnpacker {
  private out = Buffer.allocUnsafeSlow(1 << 20).fill(0);
  private z = process.env.CLOUDNET_RELAY_DIRECT_ZSTD === '0' ? undefined : directDecompressor();
  readonly direct = this.z !== undefined;

  /** The batch's ops are a view into this unpacker's buffer, valid until the next call. */
  unpack(frame: Buffer): { ops: Buffer; rawLen: number; inserts: number } {
    if (!this.direct) return unpackBatch(frame);
    const { method, rawLen, opsLen, inserts, pos } = readBatchHeader(frame);
    if (method !== METHOD_ZSTD) return unpackBatch(frame);
    if (this.out.length < opsLen + 1) this.out = Buffer.allocUnsafeSlow(Math.max(opsLen + 1, this.out.length * 2)).fill(0);
    let z = this.z;
    if (!z?._handle) z = this.z = directDecompressor()!;
    const h = z._handle!;
    // A fresh context per batch (reset() builds one): skipping it saved ~2 % of the zstd time,
    // but a payload whose output is complete while its frame is not (an empty last block cut
    // off) would leave the context inside a frame and spoil the next, intact batch.
    h.reset();
    // One byte of room beyond the announced size: more output than announced is detected.
    h.writeSync(zlib.constants.ZSTD_e_end, frame, pos, frame.length - pos, this.out, 0, opsLen + 1);
    if (z.destroyed || !z._handle) {
      this.z = undefined;
      throw new DecodeError('corrupt', `zstd: ${z.errored?.message ?? 'decompression failed'}`);
    }
    if (opsLen + 1 - z._writeState[0] !== opsLen) throw new DecodeError('corrupt', 'decompressed batch length mismatch');
    // Input left after the first frame: only Node's empty frame (see above; twice if that one
    // ended at a chunk's end too) is taken, anything else is junk.
    const left = z._writeState[1];
    if (left !== 0 && !onlyEmptyFrames(frame, frame.length - left)) throw new DecodeError('corrupt', 'data after the batch\'s zstd frame');
    return { ops: this.out.subarray(0, opsLen), rawLen, inserts };
  }
}

export function unpackBatch(frame: Buffer): { ops: Buffer; rawLen: number; inserts: number } {
  const { method, rawLen, opsLen, inserts, pos } = readBatchHeader(frame);
  const payload = frame.subarray(pos);
  if (method === METHOD_STORED) {
    if (payload.length !== opsLen) throw new DecodeError('corrupt', 'stored batch length mismatch');
    return { ops: payload, rawLen, inserts };
  }
  if (method !== METHOD_ZSTD) throw new DecodeError('corrupt', `unknown batch method ${method}`);
  let ops: Buffer;
  try {
    // One output chunk of the announced size: the default 16 KiB chunks cost ~35 % of the speed.
    ops = zlib.zstdDecompressSync(payload, { maxOutputLength: Math.max(opsLen, 1), chunkSize: Math.max(opsLen, 64) });
  } catch (err) {
    throw new DecodeError('corrupt', `zstd: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (ops.length !== opsLen) throw new DecodeError('corrupt', 'decompressed batch length mismatch');
  return { ops, rawLen, inserts };
}
