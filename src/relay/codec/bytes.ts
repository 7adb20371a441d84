// Growable output buffer and LEB128 varints for the relay's op stream. One OpWriter is reused for
// every batch of a session so that the hot path appends into preallocated memory.

/**
 * Copies src[start, end) into dst at pos without creating a view: Buffer#copy is native, while
 * `dst.set(src.subarray(...))` allocates a typed-array object per call, i.e. per page.
 */
export function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): void {
  if (end - start < 32) {
    for (let i = start; i < end; i++) dst[pos++] = src[i];
  } else if (Buffer.isBuffer(src)) {
    src.copy(dst, pos, start, end);
  } else {
    dst.set(src.subarray(start, end), pos);
  }
}

export class OpWriter {
  buf: Buffer;
  len = 0;

  constructor(initial = 1 << 14) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }

  varint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  bytes(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    copyBytes(src, start, end, this.buf, this.len);
    this.len += n;
  }

  /** The written bytes as a view, valid until the next write; then the writer is reset. */
  view(): Buffer {
    const v = this.buf.subarray(0, this.len);
    this.len = 0;
    return v;
  }

  /** Copies the written bytes out (the caller keeps them; this writer is reused). */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.len = 0;
    return out;
  }
}

export class DecodeError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Sequential reader with bounds checks: every read past the end is a DecodeError, never garbage. */
export class OpReader {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  need(n: number): void {
    if (n < 0 || this.pos + n > this.end) throw new DecodeError('corrupt', `truncated op stream at ${this.pos} (need ${n})`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    throw new DecodeError('corrupt', 'varint too long');
  }
}
