// Batch container: [u8 method][varint rawLen][varint opsLen][payload]. method 0 = ops stored,
// 1 = ops zstd-compressed. A batch whose zstd output is not smaller is stored, so the wire never
// carries more than the ops plus a few bytes.
import zlib from 'node:zlib';
import { DecodeError, OpReader, OpWriter } from './bytes.ts';
import { MAX_BATCH_OPS, MAX_BATCH_RAW } from './ops.ts';

export const METHOD_STORED = 0;
export const METHOD_ZSTD = 1;

export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
}

/** level 0 = store. Returns the packed batch. */
export function packBatch(ops: Buffer, rawLen: number, level: number, compressed?: Buffer): Buffer {
  let payload = ops;
  let method = METHOD_STORED;
  if (compressed === undefined && level !== 0) compressed = zstdCompress(ops, level);
  if (compressed && compressed.length < ops.length) {
    payload = compressed;
    method = METHOD_ZSTD;
  }
  const h = new OpWriter(24);
  h.u8(method);
  h.varint(rawLen);
  h.varint(ops.length);
  const out = Buffer.allocUnsafe(h.len + payload.length);
  h.buf.copy(out, 0, 0, h.len);
  payload.copy(out, h.len);
  return out;
}

export function unpackBatch(frame: Buffer): { ops: Buffer; rawLen: number } {
  const r = new OpReader(frame);
  const method = r.u8();
  const rawLen = r.varint();
  const opsLen = r.varint();
  if (rawLen > MAX_BATCH_RAW || opsLen > MAX_BATCH_OPS) throw new DecodeError('corrupt', 'batch exceeds limits');
  const payload = frame.subarray(r.pos);
  if (method === METHOD_STORED) {
    if (payload.length !== opsLen) throw new DecodeError('corrupt', 'stored batch length mismatch');
    return { ops: payload, rawLen };
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
  return { ops, rawLen };
}
