// The storage stream through the relay codec, in-process: the source encodes its NBD request
// stream with the relay's SessionEncoder (NBD mode: keyed pages, cache refs, XOR deltas against
// the previous version of a block, zstd) and the target decodes it with SessionDecoder. Each TCP
// connection gets fresh caches on both sides, so a dropped connection can never leave them out of
// lockstep. With codec 'none' the stream is sent as is (e.g. when a relay pair carries it).
// The frames are the relay's (protocol version 3): each carries a CRC-32 chained over the
// connection, so a damaged, lost or repeated frame fails the connection instead of writing wrong
// blocks. The version is agreed in the storage HELLO (no relay envelope frame here).
import { BatchUnpacker, createContext, F, packBatch, SessionDecoder, SessionEncoder } from '../relay/codec/index.ts';
import type { CodecContext, SessionStats, StreamMode } from '../relay/codec/index.ts';

export type CodecName = 'relay' | 'none';

/** The relay frame format the 'relay' codec speaks; source and target must agree (storage HELLO). */
export const RELAY_CODEC_VERSION = F.PROTOCOL_VERSION;

/** Why a target refuses a source's codec, or undefined when it can decode its stream. */
export function codecMismatch(codec: CodecName, sourceVersion: number | undefined): string | undefined {
  if (codec !== 'relay' || sourceVersion === RELAY_CODEC_VERSION) return undefined;
  return `relay codec version mismatch: source ${sourceVersion ?? '2 or older'}, target ${RELAY_CODEC_VERSION} (upgrade both agents together)`;
}

export interface StreamEncoder {
  /** Raw (decoded) bytes written so far. */
  readonly rawBytes: number;
  /** Bytes emitted for the wire so far. */
  readonly wireBytes: number;
  /** The relay encoder's statistics (per technique: zero, dedup, delta, literal…), relay codec only. */
  readonly stats?: SessionStats;
  write(b: Buffer): void;
  /** Emits whatever is buffered (before waiting for an acknowledgement); with `force`, also an
   *  incomplete request (the encoder then stops parsing NBD for the rest of the session). */
  flush(force?: boolean): void;
}

export interface StreamDecoder {
  push(b: Buffer): Buffer[];
}

export const DEFAULT_CODEC_CACHE = 128 << 20;

export interface EncoderOpts {
  level?: number;
  cacheBytes?: number;
  context?: CodecContext;
  /** Relay session number of the frames (default 1); sessions share the context. */
  session?: number;
  mode?: StreamMode;
  /** The connection's frame writer, when several encoders (sessions) share one connection. */
  frames?: F.FrameWriter;
}

/** A frame writer for a storage connection (shared by the encoders whose frames it carries). */
export function storageFrameWriter(): F.FrameWriter {
  return new F.FrameWriter({ envelope: false });
}

export function createEncoder(codec: CodecName, emit: (b: Buffer) => void, opts: EncoderOpts = {}): StreamEncoder {
  if (codec === 'none') {
    const s = { rawBytes: 0, wireBytes: 0, write(b: Buffer) { s.rawBytes += b.length; s.wireBytes += b.length; emit(b); }, flush() {} };
    return s;
  }
  const ctx = opts.context ?? createContext(opts.cacheBytes ?? DEFAULT_CODEC_CACHE);
  const level = opts.level ?? 3;
  const state = { rawBytes: 0, wireBytes: 0 };
  const frames = opts.frames ?? storageFrameWriter();
  const enc = new SessionEncoder(ctx, (batch) => {
    const packed = packBatch(batch.ops, batch.rawLen, level);
    const framed = frames.frame(F.F_DATA, opts.session ?? 1, packed);
    state.wireBytes += framed.length;
    emit(framed);
    // Large batches: zstd sees more context (≈9% smaller on file-system images than 256 KiB);
    // latency-sensitive writes (FUA, FLUSH) flush the batch early anyway.
  }, { mode: opts.mode ?? 'nbd', batchOpBytes: 4 << 20, batchRawBytes: 8 << 20 });
  return {
    get rawBytes() { return state.rawBytes; },
    get wireBytes() { return state.wireBytes; },
    stats: enc.stats,
    write(b: Buffer) { state.rawBytes += b.length; enc.write(b); },
    flush(force = false) { enc.flush(force); },
  };
}

export function createDecoder(codec: CodecName, opts: { cacheBytes?: number; context?: CodecContext } = {}): StreamDecoder {
  if (codec === 'none') return { push: (b) => [b] };
  const ctx = opts.context ?? createContext(opts.cacheBytes ?? DEFAULT_CODEC_CACHE);
  // Frames of several sessions may share one connection (and the context), in encoding order.
  const decoders = new Map<number, SessionDecoder>();
  const frames = new F.FrameReader({ envelope: false });
  // zstd straight into one reused buffer (the live receiver's path): the ops are decoded before the next batch.
  const unpacker = new BatchUnpacker();
  return {
    push(b: Buffer): Buffer[] {
      const out: Buffer[] = [];
      for (const f of frames.push(b)) {
        if (f.type !== F.F_DATA) continue;
        const { ops, rawLen } = unpacker.unpack(f.payload);
        let dec = decoders.get(f.session);
        if (!dec) {
          dec = new SessionDecoder(ctx);
          decoders.set(f.session, dec);
        }
        out.push(dec.decode(ops, rawLen));
      }
      return out;
    },
  };
}
