// Byte extents and page sets: the vocabulary of the change sources (dirty bitmaps, hash scans)
// and of the copy loop. Pages are the unit of the target index and of the relay cache (4 KiB);
// extents are what QEMU reports and what the copy loop reads in chunks.

export const PAGE = 4096;

export interface Extent {
  offset: number;
  length: number;
}

/** Sorts and merges overlapping or touching extents; drops empty ones. */
export function mergeExtents(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).map((e) => ({ ...e })).sort((a, b) => a.offset - b.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out.at(-1);
    if (last && e.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, e.offset + e.length - last.offset);
    } else {
      out.push(e);
    }
  }
  return out;
}

export function extentBytes(extents: readonly Extent[]): number {
  return extents.reduce((n, e) => n + e.length, 0);
}

/** Widens extents to whole pages and clips them to the volume. */
export function alignExtents(extents: readonly Extent[], volumeBytes: number, unit = PAGE): Extent[] {
  return mergeExtents(
    extents.map((e) => {
      const start = Math.floor(e.offset / unit) * unit;
      const end = Math.min(volumeBytes, Math.ceil((e.offset + e.length) / unit) * unit);
      return { offset: start, length: Math.max(0, end - start) };
    }),
  );
}

/** Splits extents into chunks of at most `chunk` bytes, aligned to `chunk` boundaries. */
export function* chunks(extents: readonly Extent[], chunk: number): Generator<Extent> {
  for (const e of extents) {
    let off = e.offset;
    const end = e.offset + e.length;
    while (off < end) {
      const next = Math.min(end, (Math.floor(off / chunk) + 1) * chunk);
      yield { offset: off, length: next - off };
      off = next;
    }
  }
}

/** A set of page numbers as a bitmap. */
export class PageSet {
  readonly pages: number;
  private readonly bits: Uint8Array;
  private n = 0;

  constructor(pages: number) {
    this.pages = pages;
    this.bits = new Uint8Array(Math.ceil(pages / 8));
  }

  static ofExtents(pages: number, extents: readonly Extent[]): PageSet {
    const s = new PageSet(pages);
    for (const e of extents) s.addRange(Math.floor(e.offset / PAGE), Math.ceil((e.offset + e.length) / PAGE));
    return s;
  }

  get size(): number {
    return this.n;
  }

  has(p: number): boolean {
    return (this.bits[p >>> 3] & (1 << (p & 7))) !== 0;
  }

  add(p: number): void {
    if (p < 0 || p >= this.pages) throw new RangeError(`page ${p} outside 0..${this.pages - 1}`);
    if (!this.has(p)) {
      this.bits[p >>> 3] |= 1 << (p & 7);
      this.n++;
    }
  }

  /** Adds pages [from, to). */
  addRange(from: number, to: number): void {
    for (let p = Math.max(0, from); p < Math.min(to, this.pages); p++) this.add(p);
  }

  delete(p: number): void {
    if (this.has(p)) {
      this.bits[p >>> 3] &= ~(1 << (p & 7));
      this.n--;
    }
  }

  union(other: PageSet): void {
    for (const p of other.list()) this.add(p);
  }

  /** Page numbers in ascending order. */
  list(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.bits.length; i++) {
      const b = this.bits[i];
      if (b === 0) continue;
      for (let j = 0; j < 8; j++) if (b & (1 << j)) out.push(i * 8 + j);
    }
    return out;
  }

  /** Runs of consecutive pages as byte extents (the last one clipped to volumeBytes). */
  toExtents(volumeBytes = this.pages * PAGE): Extent[] {
    const out: Extent[] = [];
    let start = -1;
    let prev = -2;
    for (const p of this.list()) {
      if (p !== prev + 1) {
        if (start >= 0) out.push(pageRun(start, prev, volumeBytes));
        start = p;
      }
      prev = p;
    }
    if (start >= 0) out.push(pageRun(start, prev, volumeBytes));
    return out;
  }
}

function pageRun(first: number, last: number, volumeBytes: number): Extent {
  const offset = first * PAGE;
  return { offset, length: Math.min(volumeBytes, (last + 1) * PAGE) - offset };
}

export function pagesOf(volumeBytes: number): number {
  return Math.ceil(volumeBytes / PAGE);
}
