// The relay link's round trip and capacity, measured once when the link comes up. The adaptive
// policy learns the link while sessions run, but a migration on a fast link may be over in a
// second: starting it at zstd-3 on a 1 Gbit/s link and stepping down only once the CPU proved to
// be the bottleneck costs a third of its time. With the probed capacity the first session starts
// at the step the link calls for (adaptive.ts startFor), and the feedback loop takes it from there.
//
// Method: three small PROBE frames give the round trip (the minimum); then bursts of PROBE frames,
// doubling from 1 MiB, each timed to the receiver's PROBE_ACK of its last frame: capacity =
// burst bytes / (time - round trip), the best of the bursts (a fresh connection is still in slow
// start, so the later, larger bursts measure the link rather than TCP's ramp). Probing stops after
// a burst that took longer than SLOW_BURST_MS and no longer climbed by half (the link is slow: the
// estimate is good enough, and bigger bursts would only cost WAN bytes). At most 15 MiB, once per
// link.
import { performance } from 'node:perf_hooks';
import { F } from '../codec/index.ts';
import type { Link } from './link.ts';

export interface ProbeResult {
  rttMs: number;
  /** Bytes per second the link carried in the best burst. */
  bytesPerSec: number;
  probeBytes: number;
}

const FRAME = 256 << 10;
const FIRST_BURST = 1 << 20;
const LAST_BURST = 8 << 20;
const SLOW_BURST_MS = 250;

export class LinkProbe {
  private readonly link: Link;
  private readonly timeoutMs: number;
  private seq = 0;
  private readonly waiting = new Map<number, (at: number) => void>();

  constructor(link: Link, timeoutMs = 10_000) {
    this.link = link;
    this.timeoutMs = timeoutMs;
  }

  /** A PROBE_ACK from the receiver. */
  onAck(payload: Buffer): void {
    if (payload.length < 4) return;
    const seq = payload.readUInt32BE(0);
    const done = this.waiting.get(seq);
    this.waiting.delete(seq);
    done?.(performance.now());
  }

  /** Measures the link; undefined if it closed or the receiver did not answer in time. */
  async run(): Promise<ProbeResult | undefined> {
    try {
      let rtt = Infinity;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        rtt = Math.min(rtt, (await this.send(4)) - t0);
      }
      let best = 0;
      let previous = 0;
      let probeBytes = 12;
      for (let burst = FIRST_BURST; burst <= LAST_BURST; burst *= 2) {
        const t0 = performance.now();
        let last: Promise<number> | undefined;
        for (let sent = 0; sent < burst; sent += FRAME) last = this.send(Math.min(FRAME, burst - sent));
        const ms = (await last!) - t0;
        probeBytes += burst;
        const rate = burst / (Math.max(1, ms - rtt) / 1000);
        best = Math.max(best, rate);
        // A slow burst ends the probe unless the rate is still climbing steeply (TCP's slow
        // start on a long path: 1 Gbit/s at 100 ms would otherwise look like a slow link).
        if (ms > SLOW_BURST_MS && rate < 1.5 * previous) break;
        previous = rate;
      }
      return { rttMs: rtt, bytesPerSec: best, probeBytes };
    } catch {
      return undefined;
    } finally {
      this.waiting.clear();
    }
  }

  /** Sends one PROBE frame; resolves with the time its ACK arrived. */
  private send(size: number): Promise<number> {
    if (this.link.closed) return Promise.reject(new Error('link closed'));
    const seq = ++this.seq;
    // Zeros: nothing on the path compresses (TLS or WireGuard), and at most ~60 frames per link.
    const payload = Buffer.alloc(Math.max(4, size));
    payload.writeUInt32BE(seq, 0);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(seq); reject(new Error('probe timed out')); }, this.timeoutMs);
      timer.unref();
      this.waiting.set(seq, (at) => { clearTimeout(timer); resolve(at); });
      this.link.send(F.F_PROBE, 0, payload);
    });
  }
}
