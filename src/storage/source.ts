// Source agent: replicates one VM disk to the target agent while the VM runs.
//
//   pass 1        every page of the disk that the target does not already hold (zero pages of a
//                 fresh target and pages the target's index already has cost nothing)
//   passes 2..n   only what the guest wrote during the previous pass (QEMU dirty bitmaps, or a
//                 hash scan against what the target holds when there is no QEMU), until the dirty
//                 data is below a threshold or stops shrinking
//   synchronous   a write-blocking mirror sends every new guest write to the target before the
//                 guest sees it complete; the last pass's leftovers are copied meanwhile. Once they
//                 are confirmed, the target equals the source up to in-flight writes: `synced`.
//
// The agent only ever reads the source disk. Pages are read and queued in the same tick, which is
// what orders a background copy of a page before any mirrored write that follows it.
import { closeSync, openSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { QmpClient } from '../qemu/qmp.ts';
import type { CodecContext } from '../relay/codec/index.ts';
import { logger } from '../util/log.ts';
import type { AgentCredentials } from './agent-auth.ts';
import type { CodecName } from './codec.ts';
import { alignExtents, chunks, extentBytes, mergeExtents, PAGE, PageSet, pagesOf, type Extent } from './extents.ts';
import { pageKey, ZERO_PAGE_KEY } from './index-file.ts';
import { SourceLink, TargetWriteError } from './link.ts';
import { NbdServer } from './nbd-server.ts';
import { QemuDisk, type WriteStats } from './qemu-disk.ts';
import type { PassReport, SourceStatus, Verification } from './status.ts';
import { sha256File, volumeSize } from './volume.ts';

const log = logger('storage-source');

export interface SourceAgentOptions {
  /** The disk the agent reads: a raw file or block device (the one the QEMU drive uses). */
  diskPath?: string;
  volumeId?: string;
  targetHost: string;
  targetPort: number;
  /** The source agent's credentials for this migration (agent-auth.ts). */
  credentials: AgentCredentials;
  codec?: CodecName;
  /** QMP of the running guest (socket path or a connected client); without it, hash scans and no sync mode. */
  qmp?: string | QmpClient;
  /** QEMU drive id (default disk0). */
  device?: string;
  /** Directory for the agent's unix sockets. */
  workDir: string;
  /** Go synchronous once a pass leaves at most this much dirty data (default 4 MiB). */
  convergeBytes?: number;
  maxPasses?: number;
  /** Read/transfer unit (default 64 KiB, the bitmap granularity). */
  chunkBytes?: number;
  windowBytes?: number;
  reconnectTimeoutMs?: number;
  /** See LinkOptions.stallTimeoutMs. */
  stallTimeoutMs?: number;
  /** Enter synchronous mode after converging (default: when QMP is available). */
  sync?: boolean;
  /** See LinkOptions.codecContext. */
  codecContext?: () => CodecContext;
  /** How the agent obtains the target's checksum at verification (default: none → error). */
  targetChecksum?: () => Promise<string>;
}

export class SourceAgent {
  readonly o: SourceAgentOptions;
  private link!: SourceLink;
  private disk: QemuDisk | undefined;
  private qmp: QmpClient | undefined;
  private ownQmp = false;
  private nbd: NbdServer | undefined;
  private fd = -1;
  private size = 0;
  private diskPath = '';
  private readonly st: SourceStatus;
  private statsAtStart: WriteStats | undefined;
  private statsAtSync: WriteStats | undefined;
  private released = false;
  private runPromise: Promise<void> | undefined;

  constructor(o: SourceAgentOptions) {
    this.o = o;
    this.st = {
      role: 'source', phase: 'Starting', mode: 'async', synced: false, reason: 'Starting', message: 'connecting',
      changeSource: o.qmp ? 'qemu-dirty-bitmap' : 'hash-scan', codec: o.codec ?? 'relay',
      bytesTotal: 0, bytesSent: 0, bytesOverWan: 0, pass: 0, remainingDirtyBytes: 0, passes: [],
      link: { up: false, reconnects: 0, resentBytes: 0, resumeSkippedBytes: 0, unconfirmedBytes: 0 },
      writeLatency: {}, startedAt: new Date().toISOString(),
    };
  }

  /** Current status (counters refreshed from the link). */
  async status(): Promise<SourceStatus> {
    if (this.link) {
      const l = this.link.stats;
      this.st.bytesSent = l.payloadBytes;
      this.st.bytesOverWan = l.wireBytes;
      this.st.link = { up: this.link.up, reconnects: l.reconnects, resentBytes: l.resentBytes, resumeSkippedBytes: l.resumeSkippedBytes, unconfirmedBytes: this.link.unconfirmedBytes };
    }
    await this.refreshLatency().catch(() => undefined);
    return structuredClone(this.st);
  }

  /** Starts the replication in the background; resolves once the target is synced (or fails). */
  start(): Promise<void> {
    this.runPromise ??= this.run().catch((err: unknown) => {
      this.failWith(err);
      throw err;
    });
    return this.runPromise;
  }

  private async run(): Promise<void> {
    if (this.o.qmp) {
      this.qmp = typeof this.o.qmp === 'string' ? await QmpClient.connect(this.o.qmp, { timeoutMs: 10_000 }) : this.o.qmp;
      this.ownQmp = typeof this.o.qmp === 'string';
      this.disk = await QemuDisk.open(this.qmp, this.o.device ?? 'disk0', join(this.o.workDir, 'qemu-bitmaps.sock'));
      if (this.disk.format !== 'raw') throw new Error(`drive ${this.disk.device} is ${this.disk.format}; the source agent reads raw files and block devices`);
    }
    this.diskPath = this.o.diskPath ?? this.disk?.file ?? '';
    if (!this.diskPath) throw new Error('no disk path (give diskPath or a QMP drive)');
    this.size = volumeSize(this.diskPath);
    if (this.size % PAGE !== 0) throw new Error(`disk size ${this.size} is not a multiple of ${PAGE}`);
    this.st.bytesTotal = this.size;
    this.fd = openSync(this.diskPath, 'r');
    this.link = new SourceLink({
      host: this.o.targetHost, port: this.o.targetPort, credentials: this.o.credentials, volumeBytes: this.size,
      volumeId: this.o.volumeId ?? basename(this.diskPath), codec: this.o.codec,
      windowBytes: this.o.windowBytes, reconnectTimeoutMs: this.o.reconnectTimeoutMs, stallTimeoutMs: this.o.stallTimeoutMs, codecContext: this.o.codecContext,
    });
    this.link.on('down', () => {
      if (this.st.synced) this.setState({ synced: false, reason: 'TargetUnreachable', message: 'link to the target lost; guest writes wait for it to return' });
    });
    this.link.on('up', () => {
      if (this.st.mode === 'sync' && this.st.phase === 'Synchronous') {
        this.link.flush().then(() => this.setState({ synced: true, reason: 'Synced', message: 'link restored; target identical up to in-flight writes' }), () => undefined);
      }
    });
    this.link.on('failed', (err) => this.failWith(err));
    await this.link.start();
    if (this.disk) {
      this.statsAtStart = await this.disk.writeStats();
      await this.disk.startTracking();
    }
    this.setState({ phase: 'Copying', reason: 'Copying', message: 'pass 1: whole disk' });

    let extents: Extent[] = [{ offset: 0, length: this.size }];
    let prevDirty = Infinity;
    const converge = this.o.convergeBytes ?? 4 << 20;
    const maxPasses = this.o.maxPasses ?? 10;
    for (let pass = 1; ; pass++) {
      await this.copyPass(pass, extents);
      extents = this.disk ? await this.disk.collect() : this.hashScan();
      const dirty = extentBytes(extents);
      this.st.remainingDirtyBytes = dirty;
      const done = dirty <= converge || (pass > 1 && dirty >= prevDirty * 0.9) || pass >= maxPasses;
      log.info('pass done', { pass, dirtyNext: dirty, converged: done });
      if (done) break;
      prevDirty = dirty;
      this.setState({ message: `pass ${pass + 1}: ${dirty} dirty bytes` });
      if (this.released) return;
    }
    if (!this.disk || this.o.sync === false) {
      this.setState({ phase: 'Converged', reason: 'NoSynchronousMode', message: `asynchronous passes converged (${this.st.remainingDirtyBytes} bytes dirty); synchronous mode needs QEMU` });
      return;
    }
    await this.enterSync(extents);
  }

  private async enterSync(leftover: Extent[]): Promise<void> {
    const disk = this.disk!;
    this.statsAtSync = await disk.writeStats();
    this.nbd = new NbdServer(join(this.o.workDir, 'sync-mirror.sock'), 'cloudnet', this.size, {
      write: (offset, data, _fua) => this.mirrored(this.link.write(offset, Buffer.from(data), true)),
      writeZeroes: (offset, length) => this.mirrored(this.link.writeZeroes(offset, length, true)),
      flush: () => this.mirrored(this.link.flush()),
    });
    await this.nbd.listen();
    await disk.startMirror(this.nbd.path, 'cloudnet');
    this.setState({ mode: 'sync', phase: 'Synchronous', reason: 'CatchingUp', message: 'write-blocking mirror running; copying the last dirty pages' });
    // Writes between the last bitmap rotation and the mirror's start are in the current bitmap.
    const last = mergeExtents([...leftover, ...(await disk.collect())]);
    await this.copyPass(this.st.pass + 1, last);
    this.st.remainingDirtyBytes = 0;
    if (!(await disk.mirrorReady())) throw new Error('the write-blocking mirror is not ready');
    this.st.syncedAt = new Date().toISOString();
    this.setState({ synced: true, reason: 'Synced', message: 'target identical to the source up to in-flight synchronous writes' });
  }

  /** A mirrored write completes for the guest once the target confirmed it; if the step failed,
   *  the source disk (which holds the write) stays the truth and the guest must not see an error. */
  private mirrored(p: Promise<void>): Promise<void> {
    return p.catch((err: unknown) => {
      if (this.link.failed) return;
      throw err;
    });
  }

  private hashScan(): Extent[] {
    const changed = new PageSet(pagesOf(this.size));
    const buf = Buffer.alloc(1 << 20);
    for (let off = 0; off < this.size; off += buf.length) {
      const n = readSync(this.fd, buf, 0, Math.min(buf.length, this.size - off), off);
      for (let i = 0; i < n; i += PAGE) {
        const p = (off + i) / PAGE;
        if (!this.link.expected.matches(p, pageKey(buf.subarray(i, i + PAGE)))) changed.add(p);
      }
    }
    return changed.toExtents(this.size);
  }

  private async copyPass(pass: number, extents: Extent[]): Promise<void> {
    const t0 = performance.now();
    const wire0 = this.link.stats.wireBytes;
    const sent0 = this.link.stats.payloadBytes;
    const todo = alignExtents(extents, this.size);
    const dirty = extentBytes(todo);
    this.st.pass = pass;
    this.st.remainingDirtyBytes = dirty;
    let sinceYield = 0;
    for (const c of chunks(todo, this.o.chunkBytes ?? 64 << 10)) {
      await this.link.room();
      // Let the socket drain and acknowledgements in while reading (room() alone never yields).
      if ((sinceYield += c.length) >= 1 << 20) {
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
        if (this.link.failed) throw this.link.failed;
      }
      if (this.released) throw new Error('released');
      this.copyChunk(c);
      this.st.remainingDirtyBytes -= c.length;
    }
    await this.link.flush();
    const r: PassReport = { pass, dirtyBytes: dirty, sentBytes: this.link.stats.payloadBytes - sent0, wireBytes: this.link.stats.wireBytes - wire0, ms: Math.round(performance.now() - t0) };
    this.st.passes.push(r);
    log.info('pass copied', { ...r });
  }

  /** Reads one chunk and queues the pages the target lacks — synchronously, see the file comment. */
  private copyChunk(c: Extent): void {
    const data = Buffer.alloc(c.length);
    let got = 0;
    while (got < c.length) {
      const n = readSync(this.fd, data, got, c.length - got, c.offset + got);
      if (n === 0) break;
      got += n;
    }
    const expected = this.link.expected;
    let runStart = -1;
    let runZero = false;
    const flushRun = (end: number): void => {
      if (runStart < 0) return;
      // Failures surface through room() and flush(); these promises only matter for FUA writes.
      if (runZero) this.link.writeZeroes(c.offset + runStart, end - runStart).catch(() => undefined);
      else this.link.write(c.offset + runStart, data.subarray(runStart, end)).catch(() => undefined);
      runStart = -1;
    };
    for (let i = 0; i < c.length; i += PAGE) {
      const key = pageKey(data.subarray(i, i + PAGE));
      if (expected.matches((c.offset + i) / PAGE, key)) {
        flushRun(i);
        continue;
      }
      const zero = key.equals(ZERO_PAGE_KEY);
      if (runStart >= 0 && zero !== runZero) flushRun(i);
      if (runStart < 0) {
        runStart = i;
        runZero = zero;
      }
    }
    flushRun(c.length);
  }

  private async refreshLatency(): Promise<void> {
    const wl = this.st.writeLatency;
    if (this.nbd && this.nbd.stats.writes > 0) {
      wl.mirrorWriteAvgMs = Number((this.nbd.stats.writeMsTotal / this.nbd.stats.writes).toFixed(3));
      wl.mirrorWriteMaxMs = Number(this.nbd.stats.writeMsMax.toFixed(3));
    }
    if (!this.disk || !this.statsAtStart || this.qmp?.closed) return;
    const now = await this.disk.writeStats();
    const a = this.statsAtStart;
    const b = this.statsAtSync ?? now;
    if (b.ops > a.ops) {
      wl.asyncOps = b.ops - a.ops;
      wl.asyncAvgUs = Math.round((b.totalNs - a.totalNs) / (b.ops - a.ops) / 1000);
    }
    if (this.statsAtSync && now.ops > b.ops) {
      wl.syncOps = now.ops - b.ops;
      wl.syncAvgUs = Math.round((now.totalNs - b.totalNs) / (now.ops - b.ops) / 1000);
    }
  }

  /**
   * Cutover check: with the guest paused (paused here when `pause` and QMP are available), waits
   * until every write is confirmed, then compares SHA-256 of the source disk and the target volume.
   */
  async verify(opts: { pause?: boolean; resume?: boolean } = {}): Promise<Verification> {
    let quiesced = false;
    let pausedHere = false;
    if (this.disk && this.qmp && !this.qmp.closed) {
      const state = await this.disk.runState();
      if (state === 'running' && opts.pause) {
        await this.qmp.executeUntyped('stop');
        pausedHere = true;
      }
      quiesced = (await this.disk.runState()) !== 'running';
    }
    try {
      if (this.st.mode !== 'sync') await this.copyPass(this.st.pass + 1, this.disk ? await this.disk.collect() : this.hashScan());
      await this.link.flush();
      if (!this.o.targetChecksum) throw new Error('no way to ask the target for its checksum (targetChecksum)');
      const [sourceSha256, targetSha256] = await Promise.all([sha256File(this.diskPath, this.size), this.o.targetChecksum()]);
      const v: Verification = { sourceSha256, targetSha256, match: sourceSha256 === targetSha256, at: new Date().toISOString(), quiesced };
      this.st.verification = v;
      if (v.match && quiesced) this.setState({ phase: 'Verified', reason: 'ChecksumsMatch', message: `source and target sha256 ${sourceSha256}` });
      else if (!v.match) this.setState({ synced: false, reason: 'ChecksumMismatch', message: `source ${sourceSha256} != target ${targetSha256}${quiesced ? '' : ' (guest was running)'}` });
      log.info('verification', { ...v });
      return v;
    } finally {
      if (pausedHere && opts.resume && this.qmp) await this.qmp.executeUntyped('cont');
    }
  }

  private setState(p: Partial<SourceStatus>): void {
    Object.assign(this.st, p);
  }

  private failWith(err: unknown): void {
    if (this.st.phase === 'Failed' || this.released) return;
    const msg = err instanceof Error ? err.message : String(err);
    const reason = err instanceof TargetWriteError ? 'TargetWriteFailed' : /unreachable/.test(msg) ? 'TargetUnreachable' : 'ReplicationFailed';
    this.setState({ phase: 'Failed', synced: false, reason, message: msg });
    log.error('storage replication failed', { reason, error: msg });
    // The source disk was only read; take our mirror out of the guest's write path.
    void this.disk?.cleanup().catch(() => undefined);
  }

  /** Stops replicating and removes everything the agent added to QEMU. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.disk?.cleanup().catch((err: unknown) => log.warn('cleanup failed', { error: String(err) }));
    await this.nbd?.close();
    if (this.link && !this.link.failed) await this.link.finish().catch((err: unknown) => log.warn('the target did not confirm the end', { error: String(err) }));
    this.link?.close();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    if (this.ownQmp) this.qmp?.close();
    if (this.st.phase !== 'Failed') this.setState({ phase: 'Released', synced: false, reason: 'Released', message: 'replication stopped' });
  }
}
