// The guest's serial console as a stream of lines stamped with the host's monotonic clock
// (performance.now(), ms). The guest's own clock stops while a migration pauses it, so pauses
// are measured here, on the host side, from the gaps between heartbeat lines ("HB <n> <ms>").
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface SerialLine {
  /** Host monotonic time (performance.now(), ms) at which the line was complete. */
  at: number;
  text: string;
}

export interface Heartbeat {
  n: number;
  guestMs: number;
  at: number;
}

export interface HeartbeatStats {
  count: number;
  first?: Heartbeat;
  last?: Heartbeat;
  /** Largest host-side gap between consecutive heartbeats, and where it ended. */
  maxGapMs: number;
  maxGapAfterN?: number;
  /** Counter strictly increased from line to line. */
  monotonic: boolean;
}

const HB_RE = /HB (\d+) (\d+)/;
const MAX_LINES = 200_000;

export class SerialConsole extends EventEmitter<{ line: [SerialLine] }> {
  readonly lines: SerialLine[] = [];
  /** Index of lines[0] among all lines ever seen (old lines are dropped past MAX_LINES). */
  private dropped = 0;
  private partial = '';
  private readonly log: WriteStream | undefined;

  constructor(logPath?: string) {
    super();
    this.log = logPath ? createWriteStream(logPath, { flags: 'a' }) : undefined;
  }

  feed(chunk: Buffer | string): void {
    const s = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    this.log?.write(s);
    this.partial += s;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const text = this.partial.slice(0, nl).replace(/\r/g, '');
      this.partial = this.partial.slice(nl + 1);
      const line = { at: performance.now(), text };
      this.lines.push(line);
      if (this.lines.length > MAX_LINES) {
        this.lines.splice(0, MAX_LINES / 2);
        this.dropped += MAX_LINES / 2;
      }
      this.emit('line', line);
    }
  }

  /** Total number of lines seen so far; pass it to waitFor() to only look at later lines. */
  get count(): number {
    return this.dropped + this.lines.length;
  }

  /** Resolves with the first line (at or after absolute index `from`) matching `re`. */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<{ line: SerialLine; match: RegExpMatchArray }> {
    for (let i = Math.max(0, from - this.dropped); i < this.lines.length; i++) {
      const m = this.lines[i].text.match(re);
      if (m) return Promise.resolve({ line: this.lines[i], match: m });
    }
    return new Promise((resolve, reject) => {
      const onLine = (line: SerialLine) => {
        const m = line.text.match(re);
        if (!m) return;
        clearTimeout(timer);
        this.off('line', onLine);
        resolve({ line, match: m });
      };
      const timer = setTimeout(() => {
        this.off('line', onLine);
        const tail = this.lines.slice(-15).map((l) => l.text).join('\n');
        reject(new Error(`serial console: no line matching ${re} within ${timeoutMs} ms; last lines:\n${tail}`));
      }, timeoutMs);
      this.on('line', onLine);
    });
  }

  heartbeats(from = 0): Heartbeat[] {
    return parseHeartbeats(this.lines.slice(Math.max(0, from - this.dropped)));
  }

  close(): void {
    if (this.partial) this.feed('\n');
    this.log?.end();
  }
}

export function parseHeartbeats(lines: readonly SerialLine[]): Heartbeat[] {
  const out: Heartbeat[] = [];
  for (const l of lines) {
    const m = l.text.match(HB_RE);
    if (m) out.push({ n: Number(m[1]), guestMs: Number(m[2]), at: l.at });
  }
  return out;
}

export function heartbeatStats(hbs: readonly Heartbeat[]): HeartbeatStats {
  const stats: HeartbeatStats = { count: hbs.length, first: hbs[0], last: hbs.at(-1), maxGapMs: 0, monotonic: true };
  for (let i = 1; i < hbs.length; i++) {
    if (hbs[i].n <= hbs[i - 1].n) stats.monotonic = false;
    const gap = hbs[i].at - hbs[i - 1].at;
    if (gap > stats.maxGapMs) {
      stats.maxGapMs = gap;
      stats.maxGapAfterN = hbs[i - 1].n;
    }
  }
  return stats;
}
