// Content-defined chunking (gear rolling hash, FastCDC-style) for streams the relay does not
// understand: boundaries depend on content, so an insertion does not shift every later chunk and
// repeated content dedups even at a different stream offset. Chunks are at most 4 KiB so that they
// fit one cache slot.

export const CDC_MIN = 512;
export const CDC_MAX = 4096;
const MASK = (1 << 11) - 1; // ~2 KiB average beyond the minimum

const GEAR = (() => {
  const t = new Uint32Array(256);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    t[i] = x;
  }
  return t;
})();

/**
 * Length of the next chunk starting at `start`, or 0 if no boundary is found before `end` and the
 * caller should wait for more input (only when `final` is false).
 */
export function nextChunk(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const avail = end - start;
  if (avail <= CDC_MIN) return final || avail >= CDC_MAX ? avail : 0;
  const limit = Math.min(avail, CDC_MAX);
  let h = 0;
  for (let i = CDC_MIN; i < limit; i++) {
    h = ((h << 1) + GEAR[buf[start + i]]) | 0;
    if ((h & MASK) === 0) return i + 1;
  }
  if (limit === CDC_MAX) return CDC_MAX;
  return final ? avail : 0;
}
