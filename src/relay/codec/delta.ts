// XOR + run-length page delta (the idea of CloudNet's page deltas and QEMU's XBZRLE): a re-sent
// page is described by the runs where it differs from the version the other side already holds.
// Format: repeated [varint skip][varint len][len new bytes] until the page end. The new bytes
// (not their XOR) are stored because text-like page content compresses better than its XOR.

import { copyBytes } from './bytes.ts';

const WORDS = 1024;

/**
 * Encodes the page in `cur` (an aligned 4096-byte copy) against the base page at word offset `bw`
 * (byte offset `bb`) of `baseWords`/`baseBytes`, into `out` at `outPos`. Returns the new out position, or -1 when the
 * delta would exceed `limit` bytes (then a literal page is cheaper).
 */
export function encodeDelta(baseWords: Uint32Array, bw: number, baseBytes: Uint8Array, bb: number,
  cur: Uint32Array, curBytes: Uint8Array, out: Uint8Array, outPos: number, limit: number): number {
  const stop = outPos + limit;
  let w = 0;
  let lastEnd = 0; // byte offset just after the previous run
  while (w < WORDS) {
    while (w < WORDS && baseWords[bw + w] === cur[w]) w++;
    if (w === WORDS) break;
    let e = w + 1;
    // Extend the run while words differ, or while a short equal gap (<= 2 words) separates two
    // differing words: one varint pair costs more than copying a few equal bytes.
    while (e < WORDS) {
      if (baseWords[bw + e] !== cur[e]) { e++; continue; }
      if (e + 1 < WORDS && baseWords[bw + e + 1] !== cur[e + 1]) { e += 2; continue; }
      if (e + 2 < WORDS && baseWords[bw + e + 2] !== cur[e + 2]) { e += 3; continue; }
      break;
    }
    let s = w * 4;
    let t = e * 4;
    while (curBytes[s] === baseBytes[bb + s]) s++;
    while (curBytes[t - 1] === baseBytes[bb + t - 1]) t--;
    const skip = s - lastEnd;
    const n = t - s;
    if (outPos + n + 10 > stop) return -1;
    outPos = putVarint(out, outPos, skip);
    outPos = putVarint(out, outPos, n);
    copyBytes(curBytes, s, t, out, outPos);
    outPos += n;
    lastEnd = t;
    w = e;
  }
  return outPos;
}

function putVarint(out: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[pos++] = v;
  return pos;
}

/**
 * Applies a delta: copies `base[baseOff..+pageSize)` to `dst[dstPos..+pageSize)` and overwrites
 * the runs. Returns false when the delta is malformed (the caller treats that as a corrupt frame).
 */
export function applyDelta(base: Uint8Array, src: Uint8Array, pos: number, end: number,
  dst: Uint8Array, dstPos: number, pageSize: number, baseOff = 0): boolean {
  copyBytes(base, baseOff, baseOff + pageSize, dst, dstPos);
  let at = 0;
  while (pos < end) {
    let skip = 0;
    let shift = 0;
    for (;;) {
      if (pos >= end || shift > 28) return false;
      const b = src[pos++];
      skip |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
    }
    let n = 0;
    shift = 0;
    for (;;) {
      if (pos >= end || shift > 28) return false;
      const b = src[pos++];
      n |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
    }
    at += skip;
    if (n === 0 || at + n > pageSize || pos + n > end) return false;
    copyBytes(src, pos, pos + n, dst, dstPos + at);
    pos += n;
    at += n;
  }
  return true;
}
