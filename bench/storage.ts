// Storage pre-copy benchmark: WAN bytes and time to replicate a VM disk while the guest writes to
// it, three ways, over the same shaped link (default 100 Mbit/s, source→target):
//
//   plain          what KubeVirt's block migration sends: QEMU blockdev-mirror sync=full into an
//                  NBD server on the target, plain NBD over the link, until the mirror is ready
//   precopy        CloudNet pre-copy: source agent → target agent through the relay codec, async
//                  passes then synchronous mode, until `synced`
//   precopy+nbd    the pre-copy, then KubeVirt's block migration anyway, its NBD stream carried
//                  by a relay pair (the relay codec on both ends) whose caches the pre-copy filled
//
//   npm run bench:storage   (node bench/storage.ts [--rate-mbit 100] [--disk-mib 192] [--writer-mbps 4])
//
// The disk: [0,16 MiB) rewritten by the guest's disk writer during the copy (text-like and random
// 4 KiB blocks), [16,128 MiB) an ext4 file system built with mke2fs -d from /usr/share/doc and
// /usr/lib/x86_64-linux-gnu files, [144,168 MiB) random data, the rest never written (a hole).
// Each way starts from its own copy of the image and its own guest. Results: a table on stdout and
// bench/results/storage.json. The shaping proxy, relay and agents share the bench process; CPU
// seconds of the bench process and of QEMU are reported per way.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import crypto from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { cacheDir } from '../src/qemu/image.ts';
import type { QemuGuest } from '../src/qemu/process.ts';
import type { QmpClient } from '../src/qemu/qmp.ts';
import { createContext, type CodecContext } from '../src/relay/codec/index.ts';
import { createDecoder, createEncoder, storageFrameWriter, type CodecName } from '../src/storage/codec.ts';
import { NbdServer } from '../src/storage/nbd-server.ts';
import { SourceAgent } from '../src/storage/source.ts';
import type { SourceStatus } from '../src/storage/status.ts';
import { TargetAgent } from '../src/storage/target.ts';
import { sha256File, Volume } from '../src/storage/volume.ts';
import { createGuestLab, type GuestLab } from '../test/env/qemu.ts';
import { requireTool } from '../test/env/netns.ts';
import { processCpuSeconds } from '../test/env/wan.ts';
import { startLink, type Link } from '../test/integration/storage-helpers.ts';

const MiB = 1 << 20;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { 'rate-mbit': { type: 'string' }, 'disk-mib': { type: 'string' }, 'writer-mbps': { type: 'string' } } });
const RATE = Number(args['rate-mbit'] ?? 100) * 1e6 / 8;
const DISK_MIB = Number(args['disk-mib'] ?? 192);
const WRITER_MBPS = Number(args['writer-mbps'] ?? 4);
const WRITER_BLOCKS = 4096;
const CACHE_BYTES = 320 * MiB;

// ---------------------------------------------------------------- disk image

function pickFiles(dirs: string[], budget: number): string[] {
  const out: string[] = [];
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try { names = readdirSync(d).sort(); } catch { return; }
    for (const n of names) {
      if (total >= budget) return;
      const p = join(d, n);
      let st;
      try { st = lstatSync(p, { throwIfNoEntry: false }); } catch { continue; }
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size <= 4 * MiB) { out.push(p); total += st.size; }
    }
  };
  for (const d of dirs) walk(d);
  return out;
}

function buildImage(): string {
  requireTool('mke2fs', 'e2fsprogs');
  const dir = join(cacheDir(), 'bench');
  const img = join(dir, `storage-disk-${DISK_MIB}m-v2.raw`);
  if (existsSync(img)) return img;
  mkdirSync(dir, { recursive: true });
  const staging = join(dir, 'storage-fs-staging');
  rmSync(staging, { recursive: true, force: true });
  // OS-like: mostly shared libraries and binaries, some documentation (largely .gz changelogs).
  const files = [...pickFiles(['/usr/lib/x86_64-linux-gnu'], 60 * MiB), ...pickFiles(['/usr/share/doc'], 24 * MiB)];
  for (const f of files) cpSync(f, join(staging, relative('/usr', f)), { dereference: true });
  const fs = join(dir, 'storage-fs.img');
  rmSync(fs, { force: true });
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', staging, '-F', fs, '112M'], { stdio: 'inherit' });
  rmSync(staging, { recursive: true, force: true });
  const tmp = `${img}.tmp`;
  execFileSync('truncate', ['-s', `${DISK_MIB}M`, tmp]);
  execFileSync('dd', [`if=${fs}`, `of=${tmp}`, 'bs=1M', 'seek=16', 'conv=notrunc,sparse'], { stdio: 'ignore' });
  const rnd = join(dir, 'storage-random.bin');
  const r = Buffer.alloc(24 * MiB);
  let seed = crypto.createHash('sha256').update('cloudnet-bench-storage').digest();
  for (let off = 0; off < r.length; off += 32) { seed = crypto.createHash('sha256').update(seed).digest(); seed.copy(r, off); }
  writeFileSync(rnd, r);
  execFileSync('dd', [`if=${rnd}`, `of=${tmp}`, 'bs=1M', 'seek=144', 'conv=notrunc'], { stdio: 'ignore' });
  rmSync(rnd);
  rmSync(fs);
  execFileSync('mv', [tmp, img]);
  return img;
}

// ---------------------------------------------------------------- NBD through a (relay) link

interface NbdPath {
  ingress: string;
  link: Link;
  /** Per-technique counters of the transmission-phase encoder (relay codec). */
  encoderStats(): Record<string, unknown> | undefined;
  close(): Promise<void>;
}

/** Splits the client→server bytes of an NBD connection into handshake and transmission phase. */
class HandshakeTracker {
  private stage: 'flags' | 'options' | 'transmission' = 'flags';
  private buf = Buffer.alloc(0);

  push(d: Buffer): { handshake: Buffer; rest: Buffer } {
    if (this.stage === 'transmission') return { handshake: Buffer.alloc(0), rest: d };
    this.buf = Buffer.concat([this.buf, d]);
    let used = 0;
    for (;;) {
      if (this.stage === 'flags') {
        if (this.buf.length - used < 4) break;
        used += 4;
        this.stage = 'options';
      } else if (this.stage === 'options') {
        if (this.buf.length - used < 16) break;
        const opt = this.buf.readUInt32BE(used + 8);
        const len = this.buf.readUInt32BE(used + 12);
        if (this.buf.length - used < 16 + len) break;
        used += 16 + len;
        if (opt === 7 /* GO */ || opt === 1 /* EXPORT_NAME */) this.stage = 'transmission';
      } else break;
    }
    const handshake = this.buf.subarray(0, used);
    const left = this.buf.subarray(used);
    if (this.stage === 'transmission') {
      this.buf = Buffer.alloc(0);
      return { handshake, rest: left };
    }
    this.buf = Buffer.from(left);
    return { handshake, rest: Buffer.alloc(0) };
  }
}

/** QEMU's NBD client → ingress (unix) → encoder → shaped link → decoder → NBD server (unix). */
async function startNbdPath(dir: string, egress: string, codec: CodecName, ctx?: { s: CodecContext; t: CodecContext }): Promise<NbdPath> {
  const sockets = new Set<Socket>();
  const track = (s: Socket): Socket => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => s.destroy()); return s; };
  const receiver: Server = createServer((r) => {
    track(r);
    const dec = createDecoder(codec, ctx ? { context: ctx.t } : {});
    const up = track(connect({ path: egress }));
    r.on('data', (d: Buffer) => {
      try {
        for (const out of dec.push(d)) up.write(out);
      } catch (err) {
        console.error(`relay decode failed: ${String(err)}`);
        r.destroy();
      }
    });
    up.on('data', (d: Buffer) => r.write(d));
    up.on('close', () => r.destroy());
    r.on('close', () => up.destroy());
  });
  await new Promise<void>((res) => receiver.listen(0, '127.0.0.1', () => res()));
  const rport = (receiver.address() as { port: number }).port;
  const link = await startLink(rport, RATE);
  const ingress = join(dir, `nbd-ingress-${codec}.sock`);
  let lastTx: ReturnType<typeof createEncoder> | undefined;
  const sender: Server = createServer((c) => {
    track(c);
    const w = track(connect({ host: '127.0.0.1', port: link.port }));
    const emit = (b: Buffer): void => { w.write(b); };
    // The NBD handshake (small, interactive) is its own session, flushed at once; the
    // transmission phase is parsed as NBD requests, as the relay's sender does with KubeVirt's stream.
    // Both sessions' frames share the connection, so they share its frame writer (one CRC chain).
    const frames = storageFrameWriter();
    const hs = createEncoder(codec, emit, { ...(ctx ? { context: ctx.s } : {}), session: 1, mode: 'generic', frames });
    const tx = createEncoder(codec, emit, { ...(ctx ? { context: ctx.s } : {}), session: 2, frames });
    lastTx = tx;
    const shake = new HandshakeTracker();
    let scheduled = false;
    c.on('data', (d: Buffer) => {
      const { handshake, rest } = shake.push(d);
      if (handshake.length) {
        hs.write(handshake);
        hs.flush(true);
      }
      if (!rest.length) return;
      tx.write(rest);
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => { scheduled = false; tx.flush(); });
      }
    });
    w.on('data', (d: Buffer) => c.write(d));
    w.on('close', () => c.destroy());
    c.on('close', () => w.destroy());
  });
  await new Promise<void>((res) => sender.listen(ingress, () => res()));
  return {
    ingress, link,
    encoderStats() {
      const st = lastTx?.stats?.toJSON() as { techniques?: Record<string, { count: number; rawBytes: number; opBytes: number }> } | undefined;
      return st?.techniques ? { techniques: st.techniques, rawBytes: lastTx?.rawBytes, wireBytes: lastTx?.wireBytes } : undefined;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([sender, receiver].map((s) => new Promise<void>((res) => s.close(() => res()))));
      await link.close();
    },
  };
}

/** A plain NBD server writing into the target volume (KubeVirt's target side). */
async function startTargetNbd(dir: string, volumePath: string, size: number): Promise<{ server: NbdServer; volume: Volume }> {
  const volume = new Volume(volumePath, size);
  const server = new NbdServer(join(dir, `nbd-target-${crypto.randomUUID().slice(0, 8)}.sock`), 'disk', size, {
    write: async (off, data, fua) => { volume.write(off, data); if (fua) volume.sync(); },
    writeZeroes: async (off, len, fua) => { const z = Buffer.alloc(Math.min(len, MiB)); for (let o = 0; o < len; o += z.length) volume.write(off + o, z.subarray(0, Math.min(z.length, len - o))); if (fua) volume.sync(); },
    flush: async () => volume.sync(),
  });
  await server.listen();
  return { server, volume };
}

/** KubeVirt-style block migration: blockdev-mirror sync=full into NBD; resolves when ready. */
async function blockMigration(qmp: QmpClient, nbdSocket: string): Promise<number> {
  const t0 = performance.now();
  await qmp.executeUntyped('blockdev-add', { driver: 'nbd', 'node-name': 'kv-target', server: { type: 'unix', path: nbdSocket }, export: 'disk' });
  const ready = qmp.waitForEvent('BLOCK_JOB_READY', 600_000, (e) => e.data?.device === 'kv-mirror');
  await qmp.executeUntyped('blockdev-mirror', { 'job-id': 'kv-mirror', device: 'disk0', target: 'kv-target', sync: 'full' });
  await ready;
  return (performance.now() - t0) / 1000;
}

async function endBlockMigration(qmp: QmpClient): Promise<void> {
  const done = qmp.waitForEvent('BLOCK_JOB_COMPLETED', 60_000, (e) => e.data?.device === 'kv-mirror');
  await qmp.executeUntyped('block-job-cancel', { device: 'kv-mirror' });
  await done;
  await qmp.executeUntyped('blockdev-del', { 'node-name': 'kv-target' });
}

// ---------------------------------------------------------------- the three ways

interface WayResult {
  way: string;
  seconds: number;
  wanBytes: number;
  wanForward: number;
  wanBackward: number;
  benchCpuS: number;
  qemuCpuS: number;
  identical: boolean;
  detail?: Record<string, unknown>;
}

async function bootGuest(lab: GuestLab, base: string, name: string): Promise<{ guest: QemuGuest; disk: string }> {
  const disk = join(lab.dir, `${name}.raw`);
  execFileSync('cp', ['--sparse=always', base, disk]);
  const guest = await lab.start({ name, workload: { name: 'diskwriter', params: { blocks: WRITER_BLOCKS, mbps: WRITER_MBPS } }, disks: [{ path: disk, format: 'raw' }], cpuList: '1' });
  await guest.serial.waitFor(/DISK READY/, 60_000);
  await delay(4000); // the writer's region fills, as on a disk in use
  return { guest, disk };
}

function cpuNow(guest: QemuGuest): { bench: number; qemu: number } {
  const u = process.cpuUsage();
  return { bench: (u.user + u.system) / 1e6, qemu: processCpuSeconds(guest.pid) };
}

async function identicalPaused(guest: QemuGuest, a: string, b: string): Promise<boolean> {
  await guest.qmp.executeUntyped('stop');
  const [x, y] = await Promise.all([sha256File(a), sha256File(b)]);
  return x === y;
}

/** What KubeVirt's block migration of a guest's disk cost, measured from start until the mirror is ready. */
interface BlockMigrationRun {
  seconds: number;
  wanForward: number;
  wanBackward: number;
  benchCpuS: number;
  qemuCpuS: number;
  /** The target volume equals the source disk (compared with the guest paused). */
  identical: boolean;
  /** Bytes of NBD writes the target received. */
  nbdWriteBytes: number;
  encoderStats: Record<string, unknown> | undefined;
}

/** KubeVirt's block migration of `disk` into `volume` through an NBD path of `codec` (over the
 *  shaped link); then the guest is paused, the mirror ended, the disks compared and the guest stopped. */
async function measureBlockMigration(lab: GuestLab, guest: QemuGuest, disk: string, volume: string, codec: CodecName, ctx?: { s: CodecContext; t: CodecContext }): Promise<BlockMigrationRun> {
  const tgt = await startTargetNbd(lab.dir, volume, statSync(disk).size);
  const path = await startNbdPath(lab.dir, tgt.server.path, codec, ctx);
  const c0 = cpuNow(guest);
  const seconds = await blockMigration(guest.qmp, path.ingress);
  const c1 = cpuNow(guest);
  const wanForward = path.link.bytesForward;
  const wanBackward = path.link.bytesBackward;
  await guest.qmp.executeUntyped('stop');
  await endBlockMigration(guest.qmp);
  const identical = await identicalPaused(guest, disk, volume);
  await path.close();
  await tgt.server.close();
  tgt.volume.close();
  await guest.stop();
  return {
    seconds, wanForward, wanBackward, benchCpuS: c1.bench - c0.bench, qemuCpuS: c1.qemu - c0.qemu, identical,
    nbdWriteBytes: tgt.server.stats.bytes, encoderStats: path.encoderStats(),
  };
}

async function plainWay(lab: GuestLab, base: string): Promise<WayResult> {
  const { guest, disk } = await bootGuest(lab, base, 'plain');
  const m = await measureBlockMigration(lab, guest, disk, join(lab.dir, 'plain-target.raw'), 'none');
  return {
    way: 'plain (KubeVirt block migration)', seconds: m.seconds, wanBytes: m.wanForward + m.wanBackward, wanForward: m.wanForward, wanBackward: m.wanBackward,
    benchCpuS: m.benchCpuS, qemuCpuS: m.qemuCpuS, identical: m.identical,
  };
}

async function precopyWays(lab: GuestLab, base: string): Promise<[WayResult, WayResult]> {
  const { guest, disk } = await bootGuest(lab, base, 'precopy');
  const volume = join(lab.dir, 'precopy-target.raw');
  // One relay pair: the same codec caches carry the pre-copy and, later, KubeVirt's NBD stream.
  const ctx = { s: createContext(CACHE_BYTES), t: createContext(CACHE_BYTES) };
  const target = new TargetAgent({ volumePath: volume, codecContext: () => ctx.t });
  const tport = await target.listen();
  const link = await startLink(tport, RATE);
  const agent = new SourceAgent({ targetHost: '127.0.0.1', targetPort: link.port, qmp: guest.qmp, workDir: lab.dir, codec: 'relay',
    codecContext: () => ctx.s, convergeBytes: 2 * MiB, targetChecksum: () => target.checksum() });
  const c0 = cpuNow(guest);
  const t0 = performance.now();
  await agent.start();
  const seconds = (performance.now() - t0) / 1000;
  const c1 = cpuNow(guest);
  const fwd = link.bytesForward;
  const back = link.bytesBackward;
  await delay(2000); // synchronous mode under the writer, for its write latency
  const st: SourceStatus = await agent.status();
  const v = await agent.verify({ pause: true, resume: true });
  await agent.release();
  await target.close();
  await link.close();
  // Everything the agents' link carried, synchronous phase included.
  const agentFwd = link.bytesForward;
  const agentBack = link.bytesBackward;
  const pre: WayResult = {
    way: 'CloudNet pre-copy', seconds, wanBytes: fwd + back, wanForward: fwd, wanBackward: back, benchCpuS: c1.bench - c0.bench, qemuCpuS: c1.qemu - c0.qemu, identical: v.match,
    detail: { passes: st.passes, bytesSent: st.bytesSent, writeLatency: st.writeLatency, verification: v },
  };

  // KubeVirt's block migration anyway, into the pre-copied volume, through the same relay pair.
  const nbd = await measureBlockMigration(lab, guest, disk, volume, 'relay', ctx);
  const nf = nbd.wanForward;
  const nb = nbd.wanBackward;
  const both: WayResult = {
    way: 'CloudNet pre-copy + relayed NBD', seconds: seconds + nbd.seconds, wanBytes: agentFwd + agentBack + nf + nb, wanForward: agentFwd + nf, wanBackward: agentBack + nb,
    benchCpuS: pre.benchCpuS + nbd.benchCpuS, qemuCpuS: pre.qemuCpuS + nbd.qemuCpuS, identical: nbd.identical,
    detail: { syncPhaseWanBytes: agentFwd + agentBack - fwd - back, nbdStreamSeconds: nbd.seconds, nbdStreamWanBytes: nf + nb, nbdStreamRawBytes: nbd.nbdWriteBytes, nbdEncoder: nbd.encoderStats },
  };
  return [pre, both];
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const base = buildImage();
  const allocated = Number(execFileSync('du', ['-B1', base], { encoding: 'utf8' }).split('\t')[0]);
  const lab = createGuestLab('cn-bench-storage-');
  try {
    const plain = await plainWay(lab, base);
    const [pre, both] = await precopyWays(lab, base);
    const rows = [plain, pre, both];
    const mb = (n: number) => (n / 1e6).toFixed(1);
    console.log(`\nstorage pre-copy: ${DISK_MIB} MiB disk (${mb(allocated)} MB allocated), guest writing ${WRITER_MBPS} MB/s, link ${RATE * 8 / 1e6} Mbit/s\n`);
    console.log('| way | time (s) | WAN bytes (MB) | vs plain | bench CPU (s) | QEMU CPU (s) | target identical |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.way} | ${r.seconds.toFixed(1)} | ${mb(r.wanBytes)} | ${(100 * r.wanBytes / plain.wanBytes).toFixed(1)}% | ${r.benchCpuS.toFixed(1)} | ${r.qemuCpuS.toFixed(1)} | ${r.identical ? 'yes (sha256)' : 'NO'} |`);
    }
    const wl = (pre.detail?.writeLatency ?? {}) as SourceStatus['writeLatency'];
    console.log(`\nguest write latency (QEMU blockstats): async ${wl.asyncAvgUs ?? '?'} µs avg over ${wl.asyncOps ?? 0} writes; sync ${wl.syncAvgUs ?? '?'} µs avg over ${wl.syncOps ?? 0} writes (mirror round trip avg ${wl.mirrorWriteAvgMs ?? '?'} ms, max ${wl.mirrorWriteMaxMs ?? '?'} ms)`);
    console.log(`relayed NBD stream after the pre-copy: ${mb(Number(both.detail?.nbdStreamRawBytes ?? 0))} MB of NBD writes → ${mb(Number(both.detail?.nbdStreamWanBytes ?? 0))} MB over the WAN`);
    const out = join(root, 'bench/results/storage.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify({
      at: new Date().toISOString(), diskMiB: DISK_MIB, allocatedBytes: allocated, writerMBps: WRITER_MBPS, linkBps: RATE * 8, cacheBytes: CACHE_BYTES,
      results: rows, reductionVsPlain: { precopy: 1 - pre.wanBytes / plain.wanBytes, precopyPlusNbd: 1 - both.wanBytes / plain.wanBytes },
    }, null, 2) + '\n');
    console.log(`\nwrote ${relative(root, out)}`);
    if (!rows.every((r) => r.identical)) process.exitCode = 1;
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
