// Which resource limits the sender relay now, its CPU or the link: samples are taken as batches
// leave (sender.ts), and every ~100 ms window gives a verdict that the adaptive policy
// (codec/adaptive.ts) acts on.
import { performance } from 'node:perf_hooks';

export interface BottleneckSample {
  /** The link socket has a backlog (the kernel's send buffer is full). */
  linkBacklogged: boolean;
  /** A session has most of its credit window in flight: the receiving side has not written it yet. */
  creditStarved: boolean;
  /** Batches wait for zstd (on the compression worker). */
  compressionQueued: boolean;
}

export interface Verdict {
  linkBusy: boolean;
  cpuBusy: boolean;
  /** Stream bytes taken from the sources per ms in the window. */
  inputRate: number;
  /** The link's drain rate in wire bytes per ms, as learnt (or probed), 0 if not known yet. */
  linkCapacity: number;
}

const WINDOW_MS = 100;

export interface BottleneckOptions {
  /**
   * Main-thread work so far that is not the relay's: the test bed's stream check
   * (`--hash-streams`) hashes in place, and a check that production does not run must not make
   * the relay look CPU-bound (and shed work) in tests and benchmarks. Its CPU (ms) comes off the
   * thread's CPU, its elapsed time (ms, preemption included, as in the event loop's busy time)
   * off the event loop's busy time.
   */
  excluded?: () => { cpuMs: number; wallMs: number };
}

export class BottleneckMonitor {
  private readonly excluded: () => { cpuMs: number; wallMs: number };
  private excludedStart: { cpuMs: number; wallMs: number };
  private encodeMs = 0;
  private windowStart = performance.now();
  private cpuStart = process.threadCpuUsage();
  private eluStart = performance.eventLoopUtilization();
  private samples = 0;
  private backloggedSamples = 0;
  private starvedSamples = 0;
  private queuedSamples = 0;
  /** Wire bytes sent and stream bytes taken in the current window, and the link's learnt drain rate (bytes/ms). */
  private windowWire = 0;
  private windowInput = 0;
  private linkCapacity = 0;
  /** The probe's rate (bytes/ms) when it was fast enough to trust (assumeCapacity), else 0. */
  private probedCapacity = 0;

  constructor(opts: BottleneckOptions = {}) {
    this.excluded = opts.excluded ?? (() => ({ cpuMs: 0, wallMs: 0 }));
    this.excludedStart = this.excluded();
  }

  /** Main-thread time spent encoding (the encoder's share of the event loop). */
  addEncodeMs(ms: number): void {
    this.encodeMs += ms;
  }

  addWire(bytes: number): void {
    this.windowWire += bytes;
  }

  addInput(bytes: number): void {
    this.windowInput += bytes;
  }

  /** A measured capacity (bytes/ms) to start from, until the link shows its own while backlogged. */
  assumeCapacity(bytesPerMs: number): void {
    this.probedCapacity = bytesPerMs;
    if (!this.linkCapacity) this.linkCapacity = bytesPerMs;
  }

  /** Takes one sample; once a window has passed, returns its verdict. */
  sample(s: BottleneckSample): Verdict | undefined {
    this.samples++;
    if (s.linkBacklogged) this.backloggedSamples++;
    if (s.creditStarved) this.starvedSamples++;
    // zstd on the compression worker is the bottleneck when batches wait for it (the main thread
    // then idles, so its own busy time does not show it).
    if (s.compressionQueued) this.queuedSamples++;
    const now = performance.now();
    const elapsed = now - this.windowStart;
    if (elapsed < WINDOW_MS) return undefined;
    // The relay's CPU is the bottleneck when the event loop (encoder, sockets, TLS) has no idle
    // time left, or the encoder alone takes most of it, or the main thread uses most of a core,
    // or batches queue for zstd. (The main thread's CPU, not the process's: compression runs on
    // a worker thread, and main + worker may rightly use more than one core between them.)
    const cpu = process.threadCpuUsage(this.cpuStart);
    this.cpuStart = process.threadCpuUsage();
    const elu = performance.eventLoopUtilization(this.eluStart);
    this.eluStart = performance.eventLoopUtilization();
    const ex = this.excluded();
    const exCpu = ex.cpuMs - this.excludedStart.cpuMs;
    const exWall = ex.wallMs - this.excludedStart.wallMs;
    this.excludedStart = ex;
    const loopBusy = Math.max(0, elu.active - exWall) / Math.max(1e-9, elu.active + elu.idle);
    const threadCpu = Math.max(0, (cpu.user + cpu.system) / 1000 - exCpu);
    const cpuBusy = this.encodeMs / elapsed > 0.7 || loopBusy > 0.85 || threadCpu / elapsed > 0.9 ||
      this.queuedSamples / this.samples > 0.5;
    // The link's capacity, learnt while it was the bottleneck (its rate then is what it drains);
    // sending at most of that rate counts as link-bound too, so that a relay whose CPU is also
    // busy does not shed work (and add bytes) on a link that is already nearly full.
    const rate = this.windowWire / elapsed;
    // Credits that do not come back mean the far side has not written the data yet: on a slow
    // WAN that is the link (the kernel's send buffer hides it from the socket's backlog). On a
    // link the probe found fast, starvation while the stream uses less than half of it means the
    // receiving relay or its destination is what is slow (on a shared machine, their CPU), and
    // more compression would not help: it is not taken as the link's rate either (learning it
    // there had pulled the capacity down, made every window look link-bound, and climbed the
    // ladder to zstd-6 on an idle 1 Gbit/s link).
    const starvedByLink = this.starvedSamples / this.samples > 0.5 && !(this.probedCapacity > 0 && rate < 0.5 * this.probedCapacity);
    const backlogged = this.backloggedSamples / this.samples > 0.5 || starvedByLink;
    if (backlogged) this.linkCapacity = this.linkCapacity ? 0.7 * this.linkCapacity + 0.3 * rate : rate;
    const linkBusy = backlogged || (this.linkCapacity > 0 && rate > 0.7 * this.linkCapacity);
    const inputRate = this.windowInput / elapsed;
    this.windowStart = now;
    this.windowWire = 0;
    this.windowInput = 0;
    this.encodeMs = 0;
    this.samples = 0;
    this.backloggedSamples = 0;
    this.starvedSamples = 0;
    this.queuedSamples = 0;
    return { linkBusy, cpuBusy, inputRate, linkCapacity: this.linkCapacity };
  }
}
