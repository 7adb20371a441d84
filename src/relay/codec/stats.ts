// Per-session accounting: input bytes and op bytes (before zstd) per technique, the zstd stage,
// cache hits, and per-round figures of the QEMU pre-copy (for the smart stop-and-copy decision).
import { TECHNIQUES } from './ops.ts';

export interface RoundStats {
  round: number;
  startMs: number;
  endMs: number;
  pages: number;
  zeroPages: number;
  rawBytes: number;
  opBytes: number;
  /** Input bytes of the round by the sender's mode when it was encoded ('zstd-3', 'stored',
   *  'pass-through'...; adaptive.ts): which rounds shed work. */
  modes: Record<string, number>;
}

export class SessionStats {
  readonly count = new Float64Array(TECHNIQUES.length);
  readonly rawBytes = new Float64Array(TECHNIQUES.length);
  readonly opBytes = new Float64Array(TECHNIQUES.length);
  bytesIn = 0;
  opsOut = 0;
  wireOut = 0;
  cacheLookups = 0;
  cacheHits = 0;
  syncLost = '';
  mode = 'auto';
  /** The sender's current work mode (adaptive.ts), credited to the rounds as they are encoded. */
  effortMode = '';
  rounds: RoundStats[] = [];
  currentRound: RoundStats | undefined;

  add(t: number, raw: number, op: number): void {
    this.count[t]++;
    this.rawBytes[t] += raw;
    this.opBytes[t] += op;
  }

  startRound(nowMs: number): void {
    if (this.currentRound) this.currentRound.endMs = nowMs;
    this.currentRound = { round: this.rounds.length + 1, startMs: nowMs, endMs: nowMs, pages: 0, zeroPages: 0, rawBytes: 0, opBytes: 0, modes: {} };
    this.rounds.push(this.currentRound);
    if (this.rounds.length > 1000) this.rounds.splice(0, this.rounds.length - 1000);
  }

  /** A record of the current round: raw input and op bytes, under the current work mode. */
  addToRound(round: RoundStats, raw: number, op: number): void {
    round.rawBytes += raw;
    round.opBytes += op;
    if (this.effortMode) round.modes[this.effortMode] = (round.modes[this.effortMode] ?? 0) + raw;
  }

  toJSON(): Record<string, unknown> {
    const techniques: Record<string, { count: number; rawBytes: number; opBytes: number }> = {};
    TECHNIQUES.forEach((t, i) => { techniques[t] = { count: this.count[i], rawBytes: this.rawBytes[i], opBytes: this.opBytes[i] }; });
    return {
      mode: this.mode,
      bytesIn: this.bytesIn,
      opBytes: this.opsOut,
      wireBytes: this.wireOut,
      ratio: this.bytesIn ? this.wireOut / this.bytesIn : 0,
      cacheHitRate: this.cacheLookups ? this.cacheHits / this.cacheLookups : 0,
      syncLost: this.syncLost || undefined,
      techniques,
      rounds: this.rounds,
    };
  }
}
