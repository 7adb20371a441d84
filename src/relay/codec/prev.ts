// Per-(session, RAM block) record of the last version of each page the other side holds: the
// cache slot of that content plus the first word of its fingerprint (so a slot that was reused
// for other content is recognised), or "zero". Both sides keep it in lockstep. Memory is 9 bytes
// per page ever sent, grown on demand.
import type { ContentCache } from './cache.ts';
import { MAX_PAGE_INDEX } from './ops.ts';

export const PREV_NONE = 0;
export const PREV_SLOT = 1;
export const PREV_ZERO = 2;

export class PrevTable {
  slots = new Int32Array(0);
  fp0s = new Int32Array(0);
  state = new Uint8Array(0);

  private grow(idx: number): boolean {
    if (idx >= MAX_PAGE_INDEX) return false;
    if (idx < this.state.length) return true;
    let n = Math.max(1024, this.state.length * 2);
    while (n <= idx) n *= 2;
    const sl = new Int32Array(n);
    sl.set(this.slots);
    const f = new Int32Array(n);
    f.set(this.fp0s);
    const s = new Uint8Array(n);
    s.set(this.state);
    this.slots = sl;
    this.fp0s = f;
    this.state = s;
    return true;
  }

  get memoryBytes(): number {
    return this.slots.byteLength + this.fp0s.byteLength + this.state.byteLength;
  }

  get(idx: number): number {
    return idx < this.state.length ? this.state[idx] : PREV_NONE;
  }

  setSlot(idx: number, slot: number, fp0: number): void {
    if (!this.grow(idx)) return;
    this.slots[idx] = slot;
    this.fp0s[idx] = fp0;
    this.state[idx] = PREV_SLOT;
  }

  setZero(idx: number): void {
    if (this.grow(idx)) this.state[idx] = PREV_ZERO;
  }

  clear(idx: number): void {
    if (idx < this.state.length) this.state[idx] = PREV_NONE;
  }

  /** Sender: the cache slot still holding the previous version of `idx` (a full page), or -1. */
  baseSlot(idx: number, cache: ContentCache): number {
    const slot = this.slots[idx];
    return cache.pageFp0(slot) === this.fp0s[idx] ? slot : -1;
  }

  /**
   * Receiver: the slot of the delta base, or -1. The sender decided that the base is still there
   * (baseSlot); both caches hold the same content in that slot, so the receiver only checks that
   * the slot holds a page, and the rebuilt page is checked against the sender's fingerprint. It
   * needs no fingerprint of the base, so the receiver never hashes a literal page it inserts.
   */
  receiverBaseSlot(idx: number, cache: ContentCache): number {
    const slot = this.slots[idx];
    return cache.holdsPage(slot) ? slot : -1;
  }
}
