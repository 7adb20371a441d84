// Offline codec: the same encoder/decoder as the live relay, applied to files. Several inputs in
// one run share one cache (as concurrent migrations over one relay pair do); the encoded file is
// the frame stream the sender relay would put on the wire, behind FILE_MAGIC, closed by END:
//
//   FILE_MAGIC, HELLO, OPEN 1..n, DATA (sessions interleaved), FIN of each session, END
//
// Decoding checks the whole file before it decodes a byte (the CRC chain of every frame, then the
// structure: every opened session ends with a FIN whose totals match its DATA frames, and END
// closes the file with the right counts), so a damaged or cut file is an error that names the
// frame or session, never a short or wrong output. See frames.ts for the frame checks.
import { BatchUnpacker, createContext, DecodeError, DEFAULT_CACHE_BYTES, F, packBatch, readBatchHeader, SessionDecoder, SessionEncoder } from '../codec/index.ts';
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
  /** Ops per batch (the encoder's default: 512 KiB); small values make many small frames (tests). */
  batchOpBytes?: number;
  /** Touch the whole cache up front, as a live relay does (the benchmark's steady state); default
   *  false: a one-shot run faults in only what its streams fill. */
  prefault?: boolean;
}

/**
 * Encodes sessions into one framed file, handing every piece of the file to `sink` as soon as it
 * exists (a caller that writes it out holds no more than one batch). `write(i, chunk)` may reuse
 * `chunk` once it returns: the encoder copies what it keeps.
 */
export class OfflineEncoder {
  readonly encoders: SessionEncoder[];
  private readonly w = new F.FrameWriter();
  private readonly totals: { batches: number; bytes: number }[];
  private readonly sink: (piece: Buffer) => void;

  constructor(sessions: number, sink: (piece: Buffer) => void, opts: OfflineOptions = {}) {
    const cacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    // Not pre-faulted by default: a file run touches only the part of the cache its streams fill.
    const ctx = createContext(cacheBytes, { prefault: opts.prefault ?? false });
    const level = opts.level ?? 3;
    const w = this.w;
    this.sink = sink;
    sink(F.FILE_MAGIC);
    sink(w.json(F.F_HELLO, 0, { magic: 'cloudnet-relay', version: F.PROTOCOL_VERSION, cacheBytes, role: 'file' } satisfies F.Hello));
    this.totals = Array.from({ length: sessions }, () => ({ batches: 0, bytes: 0 }));
    this.encoders = this.totals.map((t, i) => {
      sink(w.json(F.F_OPEN, i + 1, { mode: opts.mode ?? 'auto' } satisfies F.OpenInfo));
      const enc: SessionEncoder = new SessionEncoder(ctx, (b) => {
        const packed = packBatch(b.ops, b.rawLen, level, undefined, b.inserts);
        enc.stats.wireOut += packed.length + F.FRAME_HEADER;
        t.batches++;
        t.bytes += b.rawLen;
        sink(w.header(F.F_DATA, i + 1, packed));
        sink(packed);
      }, { mode: opts.mode, batchOpBytes: opts.batchOpBytes });
      return enc;
    });
  }

  write(session: number, chunk: Buffer): void {
    this.encoders[session].write(chunk);
  }

  /** Ends every session (FIN with its totals) and the file (END). */
  end(): void {
    this.encoders.forEach((e, i) => { e.end(); this.sink(this.w.frame(F.F_FIN, i + 1, F.totalsPayload(this.totals[i]))); });
    this.sink(this.w.frame(F.F_END, 0, F.fileTotalsPayload({ frames: this.w.frames, sessions: this.encoders.length })));
  }
}

/** Encodes inputs (whole buffers) into one framed output; returns the file's chunks. */
export function encodeStreams(inputs: Buffer[], opts: OfflineOptions = {}): EncodeResult {
  const out: Buffer[] = [];
  const enc = new OfflineEncoder(inputs.length, (piece) => out.push(piece), opts);
  const t0 = process.cpuUsage();
  const slice = opts.interleave ?? 0;
  if (slice > 0) {
    const maxLen = Math.max(0, ...inputs.map((b) => b.length));
    for (let off = 0; off < maxLen; off += slice) {
      inputs.forEach((b, i) => { if (off < b.length) enc.write(i, b.subarray(off, off + slice)); });
    }
  } else {
    inputs.forEach((b, i) => {
      for (let off = 0; off < b.length; off += 1 << 16) enc.write(i, b.subarray(off, off + (1 << 16)));
    });
  }
  enc.end();
  const cpu = process.cpuUsage(t0);
  return { out, stats: enc.encoders.map((e) => e.stats), cpuMs: (cpu.user + cpu.system) / 1000 };
}

const MAX_FILE_CACHE = 64 * 2 ** 30;

/** A relay file's frames, after every check that needs no decoding. Throws DecodeError. */
export function checkRelayFile(encoded: Buffer): { hello: F.Hello; frames: F.Frame[] } {
  if (encoded.length < F.FILE_MAGIC.length || !encoded.subarray(0, F.FILE_MAGIC.length).equals(F.FILE_MAGIC)) throw new DecodeError('corrupt', 'not a cloudnet relay file (bad magic)');
  const reader = new F.FrameReader({ baseOffset: F.FILE_MAGIC.length });
  const { frames, error } = reader.read(encoded.subarray(F.FILE_MAGIC.length));
  // The version first: a file of another version fails its frame checks, but says so clearly.
  const hello = frames[0]?.type === F.F_HELLO ? parseHello(frames[0].payload) : undefined;
  if (hello && hello.version !== F.PROTOCOL_VERSION) throw new DecodeError('version', `unsupported relay file version ${hello.version} (this build reads version ${F.PROTOCOL_VERSION})`);
  const cut = error ?? reader.end();
  if (cut) throw cut;
  if (!hello) throw new DecodeError('corrupt', 'corrupt frame 1 (not a valid HELLO)');
  checkStructure(frames);
  return { hello, frames };
}

function parseHello(p: Buffer): F.Hello | undefined {
  let h: F.Hello;
  try {
    h = F.parseJson<F.Hello>(p);
  } catch {
    return undefined;
  }
  if (h?.magic !== 'cloudnet-relay' || !Number.isInteger(h.version)) return undefined;
  if (h.version === F.PROTOCOL_VERSION && !(Number.isInteger(h.cacheBytes) && h.cacheBytes > 0 && h.cacheBytes <= MAX_FILE_CACHE)) return undefined;
  return h;
}

/** Frames 2..n: sessions opened once, DATA only while open, FIN with the right totals, END last. */
function checkStructure(frames: F.Frame[]): void {
  const open = new Map<number, { batches: number; bytes: number }>();
  const ended = new Set<number>();
  const at = (i: number): string => `frame ${i + 1}`;
  for (let i = 1; i < frames.length; i++) {
    const f = frames[i];
    switch (f.type) {
      case F.F_OPEN:
        if (f.session === 0 || open.has(f.session) || ended.has(f.session)) throw new DecodeError('corrupt', `corrupt ${at(i)}: session ${f.session} opened twice or invalid`);
        open.set(f.session, { batches: 0, bytes: 0 });
        break;
      case F.F_DATA: {
        const t = open.get(f.session);
        if (!t) throw new DecodeError('corrupt', `corrupt ${at(i)}: data for session ${f.session}, which is ${ended.has(f.session) ? 'already finished' : 'not open'}`);
        t.batches++;
        t.bytes += readBatchHeader(f.payload).rawLen;
        break;
      }
      case F.F_FIN: {
        const t = open.get(f.session);
        if (!t) throw new DecodeError('corrupt', `corrupt ${at(i)}: FIN for session ${f.session}, which is ${ended.has(f.session) ? 'already finished' : 'not open'}`);
        const sent = F.parseTotals(f.payload);
        if (!sent) throw new DecodeError('corrupt', `corrupt ${at(i)}: malformed FIN of session ${f.session}`);
        if (sent.batches !== t.batches || sent.bytes !== t.bytes) {
          throw new DecodeError(sent.batches > t.batches ? 'truncated' : 'corrupt', `session ${f.session}: its FIN (${at(i)}) states ${sent.batches} batches of ${sent.bytes} bytes, the file holds ${t.batches} batches of ${t.bytes} bytes (frames lost or repeated)`);
        }
        open.delete(f.session);
        ended.add(f.session);
        break;
      }
      case F.F_END: {
        if (open.size) throw new DecodeError('truncated', `truncated: session ${[...open.keys()][0]} has no FIN`);
        const t = F.parseFileTotals(f.payload);
        if (i !== frames.length - 1) throw new DecodeError('corrupt', `corrupt file: ${frames.length - 1 - i} frame(s) after the end-of-file marker (${at(i)})`);
        if (!t || t.frames !== i || t.sessions !== ended.size) throw new DecodeError('corrupt', `corrupt end-of-file marker (${at(i)}): states ${t?.frames} frames and ${t?.sessions} sessions, the file has ${i} and ${ended.size}`);
        return;
      }
      default:
        throw new DecodeError('corrupt', `corrupt ${at(i)}: frame type 0x${f.type.toString(16)} does not belong in a relay file`);
    }
  }
  const unfinished = [...open.keys()];
  throw new DecodeError('truncated', `truncated: no end-of-file marker after frame ${frames.length}${unfinished.length ? `; session ${unfinished[0]} has no FIN` : ''}`);
}

/**
 * Decodes a framed file, handing each batch's output to `onOutput` in a reused buffer (valid only
 * during the call), as the live receiver does. The whole file is checked first (checkRelayFile),
 * so onOutput sees nothing of a damaged file; a batch that fails to decode throws. Returns the CPU
 * time spent checking and decoding (not in onOutput), and the sessions in the order they were opened.
 */
export function decodeFrames(encoded: Buffer, onOutput: (session: number, out: Buffer) => void, cacheBytesOverride?: number, prefault = false): { cpuMs: number; sessions: number[] } {
  const t0 = process.cpuUsage();
  const { hello, frames } = checkRelayFile(encoded);
  const checked = process.cpuUsage(t0);
  const ctx = createContext(cacheBytesOverride ?? hello.cacheBytes, { prefault }); // not timed when pre-faulted
  let cpuMs = (checked.user + checked.system) / 1000;
  const sessions = new Map<number, SessionDecoder>();
  let into = Buffer.allocUnsafeSlow(8 << 20).fill(0);
  const unpacker = new BatchUnpacker();
  for (const f of frames) {
    const t1 = process.cpuUsage();
    let out: Buffer | undefined;
    if (f.type === F.F_OPEN) sessions.set(f.session, new SessionDecoder(ctx));
    else if (f.type === F.F_DATA) {
      const { ops, rawLen, inserts } = unpacker.unpack(f.payload);
      if (rawLen > into.length) into = Buffer.allocUnsafeSlow(rawLen);
      out = sessions.get(f.session)!.decode(ops, rawLen, into, inserts);
    } else if (f.type === F.F_FIN) sessions.get(f.session)!.finish(F.parseTotals(f.payload)!);
    const d = process.cpuUsage(t1);
    cpuMs += (d.user + d.system) / 1000; // decoding only, not what onOutput does with the bytes
    if (out) onOutput(f.session, out);
  }
  return { cpuMs, sessions: [...sessions.keys()] };
}

/** Decodes a framed file produced by encodeStreams; returns one output per session, in order. */
export function decodeStreams(encoded: Buffer, cacheBytesOverride?: number): { outputs: Buffer[][]; cpuMs: number } {
  const bySession = new Map<number, Buffer[]>();
  const r = decodeFrames(encoded, (s, out) => {
    let list = bySession.get(s);
    if (!list) bySession.set(s, list = []);
    list.push(Buffer.from(out));
  }, cacheBytesOverride);
  // Sessions in the order they were opened, including those without any data.
  return { outputs: r.sessions.map((s) => bySession.get(s) ?? []), cpuMs: r.cpuMs };
}
