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

export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
}

/** level 0 = store. Returns the packed batch. `inserts` < 0: not stated. */
export function packBatch(ops: Buffer, rawLen: number, level: number, compressed?: Buffer, inserts = -1): Buffer {
  let payload = ops;
  let method = METHOD_STORED;
  if (compressed === undefined && level !== 0) compressed = zstdCompress(ops, level);
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
  _handle: { writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void; reset(): void } | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  errored: Error | null;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

function directDecompressor(): ZstdInternals | undefined {
  const z = zlib.createZstdDecompress() as unknown as ZstdInternals;
  if (typeof z._handle?.writeSync !== 'function' || typeof z._handle.reset !== 'function' || !(z._writeState instanceof Uint32Array)) return undefined;
  z.on('error', () => undefined); // reported synchronously through `errored` below
  return z;
}

/**
 * Unpacks batches into one reused buffer: zstd writes the ops straight into it, so a batch costs
 * no allocation and no fresh page faults (zstdDecompressSync allocates its output per call: ~35 %
 * more CPU per batch, measured). Uses the native handle inside Node's ZstdDecompress stream; if a
 * Node version lacks it, `direct` is false and zstdDecompressSync is used instead.
 */
export class BatchUnpacker {
  private out = Buffer.allocUnsafeSlow(1 << 20).fill(0);
  // Off: the direct path closed sessions in the 4-VM end-to-end test with "decompressed batch
  // length mismatch" (twice in about ten runs, never with zstdDecompressSync) and the cause is not
  // found yet; CLOUDNET_RELAY_DIRECT_ZSTD=1 turns it back on for investigation.
  private z = process.env.CLOUDNET_RELAY_DIRECT_ZSTD === '1' ? directDecompressor() : undefined;
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
    h.reset();
    // One byte of room beyond the announced size: more output than announced is detected.
    h.writeSync(zlib.constants.ZSTD_e_end, frame, pos, frame.length - pos, this.out, 0, opsLen + 1);
    if (z.destroyed || !z._handle) {
      this.z = undefined;
      throw new DecodeError('corrupt', `zstd: ${z.errored?.message ?? 'decompression failed'}`);
    }
    const produced = opsLen + 1 - z._writeState[0];
    if (z._writeState[1] !== 0 || produced !== opsLen) throw new DecodeError('corrupt', 'decompressed batch length mismatch');
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
