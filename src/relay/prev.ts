// Per-(session, RAM block) record of the last version of each page the other side holds: the
// 128-bit digest of that content (looked up in the shared cache for a delta base) or "zero".
// Memory is 17 bytes per page ever sent, grown on demand.
import { DIGEST_WORDS } from './cache.ts';
import { MAX_PAGE_INDEX } from './ops.ts';

export const PREV_NONE = 0;
export const PREV_HASH = 1;
export const PREV_ZERO = 2;

export class PrevTable {
  hashes = new Uint32Array(0);
  state = new Uint8Array(0);

  private grow(idx: number): boolean {
    if (idx >= MAX_PAGE_INDEX) return false;
    if (idx < this.state.length) return true;
    let n = Math.max(1024, this.state.length * 2);
    while (n <= idx) n *= 2;
    const h = new Uint32Array(n * DIGEST_WORDS);
    h.set(this.hashes);
    const s = new Uint8Array(n);
    s.set(this.state);
    this.hashes = h;
    this.state = s;
    return true;
  }

  get memoryBytes(): number {
    return this.hashes.byteLength + this.state.byteLength;
  }

  get(idx: number): number {
    return idx < this.state.length ? this.state[idx] : PREV_NONE;
  }

  setHash(idx: number, k: Uint32Array): void {
    if (!this.grow(idx)) return;
    const o = idx * DIGEST_WORDS;
    this.hashes[o] = k[0]; this.hashes[o + 1] = k[1]; this.hashes[o + 2] = k[2]; this.hashes[o + 3] = k[3];
    this.state[idx] = PREV_HASH;
  }

  setZero(idx: number): void {
    if (this.grow(idx)) this.state[idx] = PREV_ZERO;
  }

  clear(idx: number): void {
    if (idx < this.state.length) this.state[idx] = PREV_NONE;
  }

  /** Copies the stored digest of `idx` into `out`. */
  hashOf(idx: number, out: Uint32Array): void {
    const o = idx * DIGEST_WORDS;
    out[0] = this.hashes[o]; out[1] = this.hashes[o + 1]; out[2] = this.hashes[o + 2]; out[3] = this.hashes[o + 3];
  }
}
