// Offline codec: the same encoder/decoder as the live relay, applied to files. Several inputs in
// one run share one cache (as concurrent migrations over one relay pair do); the encoded file is
// the frame stream the sender relay would put on the wire.
import { BatchUnpacker, createContext, DecodeError, DEFAULT_CACHE_BYTES, F, packBatch, SessionDecoder, SessionEncoder, unpackBatch } from '../codec/index.ts';
import type { SessionStats, StreamMode } from '../codec/index.ts';

export interface EncodeResult {
  out: Buffer[];
  stats: SessionStats[];
  cpuMs: number;
}

export interface OfflineOptions {
  cacheBytes?: number;
  level?: number;
  mode?: StreamMode;
  /** Interleave inputs in slices of this size (like concurrent sessions); 0 = one after another. */
  interleave?: number;
}

/** Encodes inputs (whole buffers) into one framed output; returns the frame chunks. */
export function encodeStreams(inputs: Buffer[], opts: OfflineOptions = {}): EncodeResult {
  const cacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
  const ctx = createContext(cacheBytes);
  const level = opts.level ?? 3;
  const out: Buffer[] = [F.FILE_MAGIC, F.jsonFrame(F.F_HELLO, 0, { magic: 'cloudnet-relay', version: F.PROTOCOL_VERSION, cacheBytes, role: 'file' } satisfies F.Hello)];
  const t0 = process.cpuUsage();
  const encoders = inputs.map((_, i) => {
    out.push(F.jsonFrame(F.F_OPEN, i + 1, { mode: opts.mode ?? 'auto' } satisfies F.OpenInfo));
    const enc: SessionEncoder = new SessionEncoder(ctx, (b) => {
      const packed = packBatch(b.ops, b.rawLen, level, undefined, b.inserts);
      enc.stats.wireOut += packed.length;
      out.push(F.frameHeader(F.F_DATA, i + 1, packed.length), packed);
    }, { mode: opts.mode });
    return enc;
  });
  const slice = opts.interleave ?? 0;
  if (slice > 0) {
    const maxLen = Math.max(0, ...inputs.map((b) => b.length));
    for (let off = 0; off < maxLen; off += slice) {
      inputs.forEach((b, i) => { if (off < b.length) encoders[i].write(b.subarray(off, off + slice)); });
    }
  } else {
    inputs.forEach((b, i) => {
      for (let off = 0; off < b.length; off += 1 << 16) encoders[i].write(b.subarray(off, off + (1 << 16)));
    });
  }
  encoders.forEach((e, i) => { e.end(); out.push(F.encodeFrame(F.F_FIN, i + 1)); });
  const cpu = process.cpuUsage(t0);
  return { out, stats: encoders.map((e) => e.stats), cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * Decodes a framed file, handing each batch's output to `onOutput` in a reused buffer (valid only
 * during the call), as the live receiver does. Returns the CPU time spent decoding only.
 */
export function decodeFrames(encoded: Buffer, onOutput: (session: number, out: Buffer) => void): { cpuMs: number; sessions: number } {
  if (encoded.length < 8 || !encoded.subarray(0, 8).equals(F.FILE_MAGIC)) throw new DecodeError('corrupt', 'not a cloudnet relay file');
  const reader = new F.FrameReader();
  const frames = reader.push(encoded.subarray(8));
  if (reader.buffered) throw new DecodeError('corrupt', 'truncated relay file');
  let ctx: ReturnType<typeof createContext> | undefined;
  const sessions = new Map<number, SessionDecoder>();
  let into = Buffer.allocUnsafeSlow(8 << 20).fill(0);
  const unpacker = new BatchUnpacker();
  let cpu = 0;
  for (const f of frames) {
    const t0 = process.cpuUsage();
    let out: Buffer | undefined;
    if (f.type === F.F_HELLO) {
      const h = F.parseJson<F.Hello>(f.payload);
      if (h.magic !== 'cloudnet-relay' || h.version !== F.PROTOCOL_VERSION) throw new DecodeError('version', `unsupported relay file version ${h.version}`);
      ctx = createContext(h.cacheBytes);
    } else if (f.type === F.F_OPEN) {
      if (!ctx) throw new DecodeError('corrupt', 'OPEN before HELLO');
      sessions.set(f.session, new SessionDecoder(ctx));
    } else if (f.type === F.F_DATA) {
      const dec = sessions.get(f.session);
      if (!dec) throw new DecodeError('corrupt', `DATA for unknown session ${f.session}`);
      const { ops, rawLen, inserts } = unpacker.unpack(f.payload);
      if (rawLen > into.length) into = Buffer.allocUnsafeSlow(rawLen);
      out = dec.decode(ops, rawLen, into, inserts);
    }
    const d = process.cpuUsage(t0);
    if (f.type !== F.F_HELLO) cpu += (d.user + d.system) / 1000; // HELLO: one-off cache allocation
    if (out) onOutput(f.session, out);
  }
  return { cpuMs: cpu, sessions: sessions.size };
}

/** Decodes a framed file produced by encodeStreams; returns one output per session, in order. */
export function decodeStreams(encoded: Buffer, cacheBytesOverride?: number): { outputs: Buffer[][]; cpuMs: number } {
  if (encoded.length < 8 || !encoded.subarray(0, 8).equals(F.FILE_MAGIC)) throw new DecodeError('corrupt', 'not a cloudnet relay file');
  const reader = new F.FrameReader();
  const frames = reader.push(encoded.subarray(8));
  if (reader.buffered) throw new DecodeError('corrupt', 'truncated relay file');
  const t0 = process.cpuUsage();
  let ctx: ReturnType<typeof createContext> | undefined;
  const sessions = new Map<number, { dec: SessionDecoder; out: Buffer[] }>();
  const order: Buffer[][] = [];
  for (const f of frames) {
    if (f.type === F.F_HELLO) {
      const h = F.parseJson<F.Hello>(f.payload);
      if (h.magic !== 'cloudnet-relay' || h.version !== F.PROTOCOL_VERSION) throw new DecodeError('version', `unsupported relay file version ${h.version}`);
      ctx = createContext(cacheBytesOverride ?? h.cacheBytes);
    } else if (f.type === F.F_OPEN) {
      if (!ctx) throw new DecodeError('corrupt', 'OPEN before HELLO');
      const s = { dec: new SessionDecoder(ctx), out: [] as Buffer[] };
      sessions.set(f.session, s);
      order.push(s.out);
    } else if (f.type === F.F_DATA) {
      const s = sessions.get(f.session);
      if (!s) throw new DecodeError('corrupt', `DATA for unknown session ${f.session}`);
      const { ops, rawLen, inserts } = unpackBatch(f.payload);
      s.out.push(s.dec.decode(ops, rawLen, undefined, inserts));
    }
  }
  const cpu = process.cpuUsage(t0);
  return { outputs: order, cpuMs: (cpu.user + cpu.system) / 1000 };
}
