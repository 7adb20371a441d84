// Relay benchmarks. `npm run bench:relay` runs (a), the codec benchmark: on the recorded QEMU
// streams in ${CLOUDNET_CACHE:-.cache}/streams (npm run record:streams), or on synthetic streams
// (clearly labelled) when there are none. It reports encode/decode MB/s per CPU-second (median of
// --repeat runs, after a warm-up), the reduction by technique and plain zstd -1/-3 of the same
// bytes, prints a table and writes bench/results/relay-codec.json. (b), the WAN benchmark with
// real QEMU, is `--wan`; (c), the live relay pair on loopback, `--live` (with `--processes`: each
// relay in its own process, as deployed, and each relay's CPU; `--tls` for the link); `--probe-workers`
// measures whether handing pages to a worker thread would pay.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { decodeFrames, encodeStreams, syntheticQemuStream } from '../src/relay/tools/index.ts';
import { TECHNIQUES, zstdCompress } from '../src/relay/codec/index.ts';

const { values: args } = parseArgs({
  options: {
    wan: { type: 'boolean' }, files: { type: 'string' }, 'max-mb': { type: 'string' }, 'cache-mb': { type: 'string' },
    levels: { type: 'string' }, out: { type: 'string' }, live: { type: 'boolean' }, repeat: { type: 'string' }, 'probe-workers': { type: 'boolean' },
    'rate-mbit': { type: 'string' }, 'rtt-ms': { type: 'string' }, 'mem-mib': { type: 'string' }, workloads: { type: 'string' },
    modes: { type: 'string' }, vms: { type: 'string' }, 'live-levels': { type: 'string' }, tls: { type: 'boolean' }, 'timeout-s': { type: 'string' }, 'dirty-mbps': { type: 'string' },
    processes: { type: 'boolean' }, 'cpu-prof': { type: 'string' },
  },
});

/**
 * (b) WAN benchmark: real QEMU (TCG) migrations from site A to site B of the emulated WAN
 * (test/env/wan.ts), side by side: plain, QEMU's XBZRLE, QEMU's multifd+zstd, and through the
 * relay pair (relay processes in the sites' node namespaces, mutual TLS across the WAN). For each
 * workload and mode, `--vms` guests migrate at once. Reports QEMU's total time and downtime,
 * rounds, bytes on the WAN (the emulator's counters) and the relays' CPU.
 */
/** Waits for a relay process's log line (it starts slowly when TCG guests load the machine). */
function readyLine(p: ChildProcess, re: RegExp, ms = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`relay not ready after ${ms} ms: ${buf.slice(-1000)}`)), ms);
    p.stderr!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.length > 65536) buf = buf.slice(-8192);
      if (re.test(buf)) { clearTimeout(timer); resolve(); }
    });
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited (${code}): ${buf.slice(-1000)}`)); });
  });
}

async function wanBenchmark(): Promise<number> {
  const { createSites, processCpuSeconds } = await import('../test/env/wan.ts');
  const { createGuestLab } = await import('../test/env/qemu.ts');
  const { makePki } = await import('../test/integration/relay-helpers.ts');
  const { migrate } = await import('../src/qemu/migrate.ts');
  type Tuning = Parameters<typeof migrate>[0];
  const rateMbit = Number(args['rate-mbit'] ?? 100);
  const rttMs = Number(args['rtt-ms'] ?? 50);
  const memMiB = Number(args['mem-mib'] ?? 512);
  const vms = Number(args.vms ?? 1);
  const timeoutMs = Number(args['timeout-s'] ?? 300) * 1000;
  const modes = (args.modes ?? 'plain,xbzrle,multifd-zstd,relay').split(',');
  const WORKLOADS: Record<string, { name: 'memwriter' | 'idle' | 'sqlload'; params?: Record<string, string | number> }> = {
    'memwriter-mix': { name: 'memwriter', params: { 'wss-mb': 64, 'dirty-mbps': 12, mix: 'zero:20,dup:20,random:20,text:40' } },
    'memwriter-text': { name: 'memwriter', params: { 'wss-mb': 64, 'dirty-mbps': 12, mix: 'text:100' } },
    idle: { name: 'idle' },
    sqlload: { name: 'sqlload' },
  };
  if (args['dirty-mbps']) for (const w of Object.values(WORKLOADS)) if (w.params?.['dirty-mbps']) w.params['dirty-mbps'] = Number(args['dirty-mbps']);
  const workloads = (args.workloads ?? 'memwriter-mix').split(',');
  const NODE = path.join(root, 'node_modules/.bin/node');
  const CLI = path.join(root, 'src/cli.ts');
  const sites = await createSites({ rateBps: rateMbit * 1e6, delayMs: rttMs / 2 });
  const lab = createGuestLab('cloudnet-bench-wan-');
  const pki = makePki();
  const rows: Record<string, unknown>[] = [];
  const base: Tuning['parameters'] = { 'max-bandwidth': 10 * 1024 * 1024 * 1024, 'downtime-limit': 300 };
  try {
    for (const wl of workloads) {
      const workload = WORKLOADS[wl];
      if (!workload) throw new Error(`unknown workload ${wl} (${Object.keys(WORKLOADS).join(', ')})`);
      for (const mode of modes) {
        const srcs = await Promise.all(Array.from({ length: vms }, (_, i) => lab.start({ name: `${wl}-${mode}-src${i}`, workload, memoryMiB: memMiB, netns: sites.a.nodeNs })));
        await Promise.all(srcs.map((g) => g.serial.waitFor(workload.name === 'memwriter' ? /MW READY/ : /HB \d+/, 120_000)));
        await new Promise((r) => setTimeout(r, 3000)); // steady state
        const dsts = await Promise.all(srcs.map((_, i) => lab.start({ name: `${wl}-${mode}-dst${i}`, workload, memoryMiB: memMiB, netns: sites.b.nodeNs, incoming: true })));
        const relays: { pid: number; kill: () => void }[] = [];
        let tuning: Pick<Tuning, 'capabilities' | 'parameters'> = { parameters: base };
        if (mode === 'xbzrle') tuning = { capabilities: { xbzrle: true }, parameters: { ...base, 'xbzrle-cache-size': Math.min(256, memMiB / 2) * 1024 * 1024 } };
        if (mode === 'multifd-zstd') tuning = { capabilities: { multifd: true }, parameters: { ...base, 'multifd-channels': 2, 'multifd-compression': 'zstd', 'multifd-zstd-level': 1 } };
        const uriFor = (i: number): { incoming: string; uri: string } => mode === 'relay'
          ? { incoming: `tcp:127.0.0.1:${49152 + i}`, uri: `tcp:127.0.0.1:${49152 + i}` }
          : { incoming: `tcp:0.0.0.0:${49152 + i}`, uri: `tcp:${sites.b.nodeIp}:${49152 + i}` };
        if (mode === 'relay') {
          const targets = srcs.flatMap((_, i) => ['--target', `vm${i}=127.0.0.1:${49152 + i}`]);
          const listens = srcs.flatMap((_, i) => ['--listen', `127.0.0.1:${49152 + i}/vm${i}`]);
          const env = { ...process.env, LOG_LEVEL: 'info' };
          const rx = sites.spawn(sites.b.nodeNs, NODE, [CLI, 'relay', 'receive', '--listen', `${sites.b.nodeIp}:7400`, ...targets,
            '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey, '--cache-mb', '256'], { env });
          await readyLine(rx, /relay receiver ready/);
          const tx = sites.spawn(sites.a.nodeNs, NODE, [CLI, 'relay', 'send', ...listens, '--peer', `${sites.b.nodeIp}:7400`, '--servername', 'localhost',
            '--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--cache-mb', '256'], { env });
          await readyLine(tx, /relay sender ready/);
          for (const p of [rx, tx]) relays.push({ pid: p.pid!, kill: () => p.kill('SIGTERM') });
        }
        const cpu0 = relays.map((r) => processCpuSeconds(r.pid));
        const w0 = await sites.stats();
        const t0 = performance.now();
        const results = await Promise.all(srcs.map((src, i) => migrate({
          source: src.qmp, destination: dsts[i].qmp, incomingUri: uriFor(i).incoming, uri: uriFor(i).uri, ...tuning, timeoutMs,
        }).catch((err: unknown) => ({ status: 'failed', error: String(err), totalTimeMs: NaN, downtimeMs: NaN, rounds: NaN, ramTransferredBytes: NaN }))));
        const wallMs = performance.now() - t0;
        const w1 = await sites.stats();
        const relayCpu = relays.map((r, i) => processCpuSeconds(r.pid) - cpu0[i]).reduce((a, b) => a + b, 0);
        for (const r of relays) r.kill();
        await Promise.all([...srcs, ...dsts].map((g) => g.stop(2000)));
        const row = {
          workload: wl, mode, vms, memMiB, rateMbit, rttMs,
          completed: results.filter((r) => r.status === 'completed').length,
          totalTimeMs: Math.max(...results.map((r) => r.totalTimeMs)),
          // QEMU reports total-time 0 for some multifd runs; the host-measured time is the fallback.
          hostTimeMs: Math.round(Math.max(...results.map((r) => ('wallTimeMs' in r ? r.wallTimeMs : NaN)))),
          downtimeMs: Math.max(...results.map((r) => r.downtimeMs)),
          rounds: Math.max(...results.map((r) => r.rounds)),
          wanBytes: w1.ab.txBytes - w0.ab.txBytes,
          wallMs: Math.round(wallMs),
          relayCpuSeconds: mode === 'relay' ? Math.round(relayCpu * 100) / 100 : undefined,
          errors: results.filter((r) => r.status !== 'completed').map((r) => ('error' in r ? r.error : r.status)),
        };
        rows.push(row);
        console.log(`wan ${wl.padEnd(15)} ${mode.padEnd(13)} vms=${vms} done=${row.completed}/${vms} total=${(row.totalTimeMs / 1000).toFixed(1)} s (host ${(row.hostTimeMs / 1000).toFixed(1)} s) ` +
          `downtime=${row.downtimeMs} ms rounds=${row.rounds} WAN=${(row.wanBytes / 1e6).toFixed(1)} MB${row.relayCpuSeconds !== undefined ? ` relay CPU=${row.relayCpuSeconds} s` : ''}`);
      }
    }
  } finally {
    await lab.destroy();
    await sites.destroy();
    pki.cleanup();
  }
  const outFile = args.out ?? path.join(root, 'bench', 'results', 'relay-wan.json');
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), loadavg: os.loadavg(), rows }, null, 1));
  console.log(`wrote ${path.relative(root, outFile)}`);
  return rows.every((r) => r.completed === vms) ? 0 : 1;
}


const root = path.resolve(import.meta.dirname, '..');
const machineLine = (): string => `machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
const cacheDir = process.env.CLOUDNET_CACHE ?? path.join(root, '.cache');
const streamsDir = path.join(cacheDir, 'streams');
const maxBytes = Math.round(Number(args['max-mb'] ?? 1e6) * 1e6);
const cacheBytes = Math.round(Number(args['cache-mb'] ?? 256) * (1 << 20));
const levels = (args.levels ?? '1,3').split(',').map(Number);
// The machine is shared: every encode/decode is timed `repeat` times and the median is reported.
const repeat = Math.max(1, Number(args.repeat ?? 3));

if (args.wan) {
  process.exit(await wanBenchmark());
}

/**
 * Would a worker_threads pool pay for the per-page work of the encoder? Compares fingerprinting a
 * batch of pages inline (copy to an aligned scratch + fingerprint, what the encoder does) with
 * handing the batch to a worker (copy into shared memory, post, wait for the fingerprints).
 */
async function probeWorkers(): Promise<void> {
  const { Worker } = await import('node:worker_threads');
  const { pathToFileURL } = await import('node:url');
  const { fingerprint } = await import('../src/relay/codec/index.ts');
  const cacheUrl = pathToFileURL(path.join(root, 'src/relay/codec/index.ts')).href;
  const rounds = 400;
  const results = [];
  for (const pages of [16, 256, 1024]) {
    const src = Buffer.allocUnsafeSlow(pages * 4096 + 9);
    crypto.randomFillSync(src);
    const cur = Buffer.alloc(4096);
    const cw = new Uint32Array(cur.buffer, cur.byteOffset, 1024);
    const fp = new Int32Array(2);
    const inline = (): void => { for (let p = 0; p < pages; p++) { src.copy(cur, 0, 9 + p * 4096, 9 + p * 4096 + 4096); fingerprint(cw, cur, 0, 4096, fp); } };
    for (let r = 0; r < rounds; r++) inline(); // warm-up
    let c0 = process.cpuUsage();
    let t0 = performance.now();
    for (let r = 0; r < rounds; r++) inline();
    let c = process.cpuUsage(c0);
    const inlineUs = { cpu: (c.user + c.system) / rounds, wall: (performance.now() - t0) * 1000 / rounds };
    const sab = new SharedArrayBuffer(pages * 4096);
    const shared = Buffer.from(sab);
    const out = new Int32Array(new SharedArrayBuffer(pages * 8));
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.cacheUrl).then(({ fingerprint }) => {
        const words = new Uint32Array(workerData.sab), bytes = new Uint8Array(workerData.sab), fp = new Int32Array(2);
        parentPort.on('message', (n) => {
          for (let p = 0; p < n; p++) { fingerprint(words, bytes, p * 4096, 4096, fp); workerData.out[2 * p] = fp[0]; workerData.out[2 * p + 1] = fp[1]; }
          parentPort.postMessage(n);
        });
        parentPort.postMessage(-1);
      });`, { eval: true, workerData: { sab, out, cacheUrl } });
    await new Promise((r) => worker.once('message', r));
    const viaWorker = async (): Promise<void> => {
      src.copy(shared, 0, 9, 9 + pages * 4096);
      worker.postMessage(pages);
      await new Promise((r) => worker.once('message', r));
    };
    for (let r = 0; r < 50; r++) await viaWorker();
    c0 = process.cpuUsage();
    t0 = performance.now();
    for (let r = 0; r < rounds; r++) await viaWorker();
    c = process.cpuUsage(c0);
    const workerUs = { cpu: (c.user + c.system) / rounds, wall: (performance.now() - t0) * 1000 / rounds };
    await worker.terminate();
    results.push({ pages, inlineUs, workerUs });
    console.log(`${String(pages).padStart(5)} pages: inline ${inlineUs.wall.toFixed(0)} us (CPU ${inlineUs.cpu.toFixed(0)} us); worker round trip ${workerUs.wall.toFixed(0)} us (CPU of both threads ${workerUs.cpu.toFixed(0)} us)`);
  }
  const outFile = args.out ?? path.join(root, 'bench', 'results', 'relay-workers.json');
  fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), loadavg: os.loadavg(), results }, null, 1));
}

if (args['probe-workers']) {
  await probeWorkers();
  process.exit(0);
}

interface Input { name: string; data: Buffer; source: 'recorded' | 'synthetic' }

function loadInputs(): Input[] {
  const wanted = args.files?.split(',');
  const files = fs.existsSync(streamsDir) ? fs.readdirSync(streamsDir).filter((f) => f.endsWith('.qemu')).sort() : [];
  const picked = wanted ? files.filter((f) => wanted.some((w) => f === w || f === `${w}.qemu`)) : files;
  if (picked.length) {
    return picked.map((f) => {
      const data = fs.readFileSync(path.join(streamsDir, f));
      return { name: f, data: data.length > maxBytes ? data.subarray(0, maxBytes) : data, source: 'recorded' as const };
    });
  }
  console.log(`# no recorded streams in ${streamsDir}: using SYNTHETIC streams (run npm run record:streams for real ones)`);
  return [
    { name: 'synthetic-a', data: syntheticQemuStream({ seed: 1, pages: 16384, rounds: 5 }), source: 'synthetic' },
    { name: 'synthetic-b (same content as a)', data: syntheticQemuStream({ seed: 2, pages: 16384, rounds: 5, contentSeed: 1 }), source: 'synthetic' },
  ];
}

function cpuMs<T>(fn: () => T): [T, number] {
  const t0 = process.cpuUsage();
  const r = fn();
  const d = process.cpuUsage(t0);
  return [r, (d.user + d.system) / 1000];
}

interface Row {
  name: string;
  source: string;
  inputBytes: number;
  level: number;
  wireBytes: number;
  ratio: number;
  encodeMBps: number;
  decodeMBps: number;
  /** Every timed run (MB per CPU-second); encodeMBps/decodeMBps are their medians. */
  encodeRuns: number[];
  decodeRuns: number[];
  zstd1Bytes: number;
  zstd3Bytes: number;
  zstd1MBps: number;
  zstd3MBps: number;
  vsZstd3: number;
  exact: boolean;
  rounds: number;
  techniques: Record<string, { count: number; inputBytes: number; opBytes: number }>;
}

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function plainZstd(data: Buffer, level: number): [number, number] {
  // One context over the whole stream, in 8 MiB pieces (what `zstd -N` on the file would see,
  // minus the cross-piece window).
  const [size, ms] = cpuMs(() => {
    let n = 0;
    for (let o = 0; o < data.length; o += 8 << 20) n += zstdCompress(data.subarray(o, o + (8 << 20)), level).length;
    return n;
  });
  return [size, data.length / 1e6 / (ms / 1000)];
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** Encodes and decodes `inputs` at each level, `repeat` times, the levels interleaved (1, 3, 1, 3...). */
function run(name: string, inputs: Input[], lvls: number[], zstd: { z1: number; z3: number; s1: number; s3: number }): Row[] {
  const datas = inputs.map((i) => i.data);
  const inputBytes = datas.reduce((a, b) => a + b.length, 0);
  const want = datas.map(sha);
  const per = lvls.map(() => ({ encodeRuns: [] as number[], decodeRuns: [] as number[], exact: true, enc: undefined as ReturnType<typeof encodeStreams> | undefined, wire: 0 }));
  for (let r = 0; r < repeat; r++) {
    lvls.forEach((level, li) => {
      const p = per[li];
      // Pre-faulted caches, as in a live relay (a long-running process): its steady state.
      const enc = encodeStreams(datas, { cacheBytes, level, prefault: true });
      const encoded = Buffer.concat(enc.out);
      // Exactness: a first, untimed decode hashes the output. The timed decodes hand their output
      // to a sink that only counts it (the relay's own work, not SHA-256's).
      if (r === 0) {
        const hashes = datas.map(() => crypto.createHash('sha256'));
        decodeFrames(encoded, (s, out) => hashes[s - 1].update(out));
        p.exact &&= hashes.every((h, i) => h.digest('hex') === want[i]);
      }
      let outBytes = 0;
      const dec = decodeFrames(encoded, (_s, out) => { outBytes += out.length; }, undefined, true);
      p.exact &&= outBytes === inputBytes;
      p.encodeRuns.push(inputBytes / 1e6 / (enc.cpuMs / 1000));
      p.decodeRuns.push(inputBytes / 1e6 / (dec.cpuMs / 1000));
      p.enc = enc;
      p.wire = encoded.length;
    });
  }
  return lvls.map((level, li) => {
    const { encodeRuns, decodeRuns, exact, enc, wire } = per[li];
    const techniques: Row['techniques'] = {};
    TECHNIQUES.forEach((t, i) => {
      techniques[t] = { count: 0, inputBytes: 0, opBytes: 0 };
      for (const st of enc!.stats) { techniques[t].count += st.count[i]; techniques[t].inputBytes += st.rawBytes[i]; techniques[t].opBytes += st.opBytes[i]; }
    });
    return {
      name, source: inputs[0].source, inputBytes, level, wireBytes: wire, ratio: wire / inputBytes,
      encodeMBps: median(encodeRuns), decodeMBps: median(decodeRuns),
      encodeRuns: encodeRuns.map((x) => Math.round(x)), decodeRuns: decodeRuns.map((x) => Math.round(x)),
      zstd1Bytes: zstd.z1, zstd3Bytes: zstd.z3, zstd1MBps: zstd.s1, zstd3MBps: zstd.s3, vsZstd3: wire / zstd.z3, exact,
      rounds: Math.max(...enc!.stats.map((st) => st.rounds.length)), techniques,
    };
  });
}

/**
 * (c) Live relay pair on loopback (plain link: this measures the relay, not TLS or a WAN): each
 * stream goes through sender -> receiver -> a discarding sink as fast as the relay allows.
 */
async function liveRun(input: Input, level: number | 'auto'): Promise<Record<string, number | string | boolean>> {
  const { ReceiverRelay, SenderRelay } = await import('../src/relay/transport/index.ts');
  const net = await import('node:net');
  // The sink keeps what arrives (socket reads are fresh buffers: no copy) and hashes it after the
  // timed window: the CPU figure is the relays' (and the pushing client's), not SHA-256's.
  const received: Buffer[] = [];
  let got = 0;
  const sink = net.createServer({ allowHalfOpen: true }, (c) => { c.on('data', (d: Buffer) => { received.push(d); got += d.length; }); c.on('end', () => c.end()); });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  // --tls: the link with mutual TLS, as between sites (default: plain, as inside WireGuard).
  let security: import('../src/relay/transport/net-util.ts').LinkSecurity = { kind: 'plain-inside-wireguard' };
  let senderSecurity: import('../src/relay/transport/net-util.ts').LinkSecurity = security;
  let cleanup = (): void => undefined;
  if (args.tls) {
    const { makePki } = await import('../test/integration/relay-helpers.ts');
    const { loadTls } = await import('../src/relay/transport/net-util.ts');
    const pki = makePki();
    cleanup = () => pki.cleanup();
    security = loadTls(pki.ca, pki.serverCert, pki.serverKey);
    senderSecurity = loadTls(pki.ca, pki.clientCert, pki.clientKey, 'localhost');
  }
  const receiver = new ReceiverRelay({ listen: { host: '127.0.0.1', port: 0 }, targets: { t: { host: '127.0.0.1', port: (sink.address() as { port: number }).port } }, security, cacheBytes });
  const r = await receiver.start();
  const sender = new SenderRelay({ listen: [{ addr: { host: '127.0.0.1', port: 0 }, target: 't', mode: 'auto' }], peer: { host: '127.0.0.1', port: r.port }, security: senderSecurity, cacheBytes, level });
  const [a] = await sender.start();
  await sender.connect();
  // How long the event loop is blocked (both relays share it here): batches are encoded and
  // decoded synchronously, so this bounds the latency a batch adds to everything else.
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const s = net.connect({ port: a.port, host: '127.0.0.1', allowHalfOpen: true }, async () => {
      for (let o = 0; o < input.data.length; o += 1 << 16) {
        if (!s.write(input.data.subarray(o, o + (1 << 16)))) await new Promise((d) => s.once('drain', d));
      }
      s.end();
    });
    s.on('data', () => undefined);
    s.on('close', () => resolve());
  });
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  loop.disable();
  const st = sender.stats() as { maxBufferedBytes: number; mode: string; finished: { wireBytes: number; rounds: { modes: Record<string, number> }[] }[] };
  const modes: Record<string, number> = {};
  for (const r of st.finished[0]?.rounds ?? []) for (const [m, b] of Object.entries(r.modes)) modes[m] = (modes[m] ?? 0) + b;
  const rs = receiver.stats() as { maxBufferedBytes: number };
  await sender.stop(); await receiver.stop(); sink.close(); cleanup();
  return {
    name: input.name, level: String(level), modes: JSON.stringify(modes), inputBytes: input.data.length, wallMs: Math.round(wall), mbPerS: input.data.length / 1e6 / (wall / 1000),
    mbPerCpuS: input.data.length / 1e6 / ((cpu.user + cpu.system) / 1e6),
    cpuSeconds: (cpu.user + cpu.system) / 1e6, wireRatio: (st.finished[0]?.wireBytes ?? 0) / input.data.length,
    senderMaxBufferedBytes: st.maxBufferedBytes, receiverMaxBufferedBytes: rs.maxBufferedBytes,
    exact: got === input.data.length && received.reduce((h, d) => h.update(d), crypto.createHash('sha256')).digest('hex') === sha(input.data),
    loopDelayP99Ms: loop.percentile(99) / 1e6, loopDelayMaxMs: loop.max / 1e6,
  };
}

/** CPU-seconds (user + system) a process has used so far, from /proc (Linux). */
function pidCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks (USER_HZ is 100 on Linux)
}

/**
 * (c') The live relay pair as deployed (`--live --processes`): `cloudnet relay receive` and
 * `cloudnet relay send` each in its own child process (mutual TLS with --tls, else plain as inside
 * WireGuard), the pushing client and the sink in this process. Each relay's CPU-seconds come from
 * /proc over the timed window only (the processes' start-up, the link handshake, the cache's
 * pre-faulting and a warm-up session of a small synthetic stream come before it), so "MB of stream
 * per relay CPU-second" is the input bytes over the two relays' CPU, client and sink excluded.
 * `--cpu-prof DIR` writes each relay's V8 CPU profile there (node --cpu-prof; whole process).
 */
async function liveProcessRun(input: Input, level: number | 'auto', run: number): Promise<Record<string, number | string | boolean>> {
  const net = await import('node:net');
  const { spawn } = await import('node:child_process');
  const received: Buffer[] = [];
  let got = 0;
  let sinkBytes = 0;
  const sink = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d: Buffer) => { sinkBytes += d.length; if (timed) { received.push(d); got += d.length; } });
    c.on('end', () => c.end());
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  let timed = false;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-live-'));
  const link: string[] = ['--plain-inside-wireguard'];
  let senderLink = link;
  let cleanup = (): void => undefined;
  if (args.tls) {
    const { makePki } = await import('../test/integration/relay-helpers.ts');
    const pki = makePki();
    cleanup = () => pki.cleanup();
    senderLink = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--servername', 'localhost'];
    link.splice(0, 1, '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey);
  }
  const NODE = path.join(root, 'node_modules/.bin/node');
  const CLI = path.join(root, 'src/cli.ts');
  const prof = args['cpu-prof'] ? (role: string) => ['--cpu-prof', '--cpu-prof-dir', path.resolve(args['cpu-prof']!), '--cpu-prof-name', `${role}-${path.basename(input.name)}-${level}-${run}.cpuprofile`] : () => [];
  const env = { ...process.env, LOG_LEVEL: 'info' };
  const start = async (role: string, argv: string[]): Promise<{ p: ChildProcess; port: number }> => {
    const p = spawn(NODE, [...prof(role), CLI, 'relay', ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`${role} not ready: ${buf.slice(-1000)}`)), 60_000);
      p.stderr!.on('data', (c: Buffer) => {
        if (buf.length < 65536) buf += c.toString();
        const m = /"listen":"[^"]*:(\d+)[^"]*","message":"relay (?:sender|receiver) ready"/.exec(buf);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${role} exited (${code}): ${buf.slice(-1000)}`)); });
    });
    return { p, port };
  };
  const cacheMb = String(cacheBytes / (1 << 20));
  const rx = await start('receiver', ['receive', '--listen', '127.0.0.1:0', '--target', `t=127.0.0.1:${(sink.address() as { port: number }).port}`, '--cache-mb', cacheMb, ...link]);
  const statsFile = path.join(tmp, 'sender.json');
  const tx = await start('sender', ['send', '--listen', '127.0.0.1:0/t@auto', '--peer', `127.0.0.1:${rx.port}`, '--cache-mb', cacheMb, '--level', String(level), '--stats-file', statsFile, ...senderLink]);
  const push = (data: Buffer): Promise<void> => new Promise<void>((resolve) => {
    const s = net.connect({ port: tx.port, host: '127.0.0.1', allowHalfOpen: true }, async () => {
      for (let o = 0; o < data.length; o += 1 << 16) {
        if (!s.write(data.subarray(o, o + (1 << 16)))) await new Promise((d) => s.once('drain', d));
      }
      s.end();
    });
    s.on('data', () => undefined);
    s.on('close', () => resolve());
  });
  // Warm-up: the link comes up (TLS handshake, caches allocated and pre-faulted), the JIT compiles.
  const warm = syntheticQemuStream({ seed: 99, pages: 2048, rounds: 1 });
  await push(warm);
  const warmSink = sinkBytes;
  const tx0 = pidCpuSeconds(tx.p.pid!);
  const rx0 = pidCpuSeconds(rx.p.pid!);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  timed = true;
  await push(input.data);
  const wall = performance.now() - t0;
  const senderCpu = pidCpuSeconds(tx.p.pid!) - tx0;
  const receiverCpu = pidCpuSeconds(rx.p.pid!) - rx0;
  const cpu = process.cpuUsage(c0);
  const exited = [tx.p, rx.p].map((p) => new Promise((r) => p.once('exit', r)));
  tx.p.kill('SIGTERM');
  rx.p.kill('SIGTERM');
  await Promise.all(exited);
  const st = JSON.parse(fs.readFileSync(statsFile, 'utf8')) as { maxBufferedBytes: number; finished: { wireBytes: number; rounds: { modes: Record<string, number> }[] }[] };
  const session = st.finished[st.finished.length - 1];
  const modes: Record<string, number> = {};
  for (const r of session?.rounds ?? []) for (const [m, b] of Object.entries(r.modes)) modes[m] = (modes[m] ?? 0) + b;
  sink.close();
  cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
  const relayCpu = senderCpu + receiverCpu;
  return {
    name: input.name, level: String(level), link: args.tls ? 'tls' : 'plain', processes: true, modes: JSON.stringify(modes), inputBytes: input.data.length,
    wallMs: Math.round(wall), mbPerS: input.data.length / 1e6 / (wall / 1000),
    senderCpuSeconds: senderCpu, receiverCpuSeconds: receiverCpu, relayCpuSeconds: relayCpu,
    mbPerRelayCpuS: input.data.length / 1e6 / relayCpu,
    senderMbPerCpuS: input.data.length / 1e6 / senderCpu, receiverMbPerCpuS: input.data.length / 1e6 / receiverCpu,
    benchProcessCpuSeconds: (cpu.user + cpu.system) / 1e6,
    wireRatio: (session?.wireBytes ?? 0) / input.data.length, senderMaxBufferedBytes: st.maxBufferedBytes,
    exact: warmSink === warm.length && got === input.data.length && received.reduce((h, d) => h.update(d), crypto.createHash('sha256')).digest('hex') === sha(input.data),
    loadavg1: os.loadavg()[0],
  };
}

const inputs = loadInputs();
console.log(`${machineLine()} (at the start)`);
if (args.live) {
  // Each stream at each level (default: the adaptive policy and a fixed zstd-3), `repeat` times,
  // interleaved; the summary gives the medians.
  const liveLevels = (args['live-levels'] ?? 'auto,3').split(',').map((l) => (l === 'auto' ? 'auto' as const : Number(l)));
  const live: Record<string, number | string | boolean>[] = [];
  for (let rep = 0; rep < repeat; rep++) {
    for (const i of inputs) {
      for (const level of liveLevels) {
        if (args.processes) {
          const r = await liveProcessRun(i, level, rep + 1);
          live.push({ ...r, run: rep + 1 });
          console.log(`live run ${rep + 1} ${String(r.name).padEnd(24)} level ${String(level).padEnd(4)} ${r.link} ${(Number(r.inputBytes) / 1e6).toFixed(1).padStart(7)} MB in ${r.wallMs} ms = ${Number(r.mbPerS).toFixed(0)} MB/s; relay CPU ${Number(r.relayCpuSeconds).toFixed(2)} s (sender ${Number(r.senderCpuSeconds).toFixed(2)}, receiver ${Number(r.receiverCpuSeconds).toFixed(2)}) = ${Number(r.mbPerRelayCpuS).toFixed(0)} MB of stream per relay CPU-s, wire ${pct(Number(r.wireRatio))}, modes ${r.modes}, load ${Number(r.loadavg1).toFixed(1)}, exact ${r.exact}`);
          continue;
        }
        const r = await liveRun(i, level);
        live.push({ ...r, run: rep + 1 });
        console.log(`live run ${rep + 1} ${String(r.name).padEnd(24)} level ${String(level).padEnd(4)} ${(Number(r.inputBytes) / 1e6).toFixed(1).padStart(7)} MB in ${r.wallMs} ms = ${Number(r.mbPerS).toFixed(0)} MB/s, ${Number(r.mbPerCpuS).toFixed(0)} MB per CPU-s (both relays in one process), wire ${pct(Number(r.wireRatio))}, modes ${r.modes}, max buffered: sender ${(Number(r.senderMaxBufferedBytes) / 1024).toFixed(0)} KiB, receiver ${(Number(r.receiverMaxBufferedBytes) / 1024).toFixed(0)} KiB, loop delay p99 ${Number(r.loopDelayP99Ms).toFixed(1)} ms, exact ${r.exact}`);
      }
    }
  }
  const summary: Record<string, unknown>[] = [];
  for (const i of inputs) {
    for (const level of liveLevels) {
      const rs = live.filter((r) => r.name === i.name && r.level === String(level));
      if (args.processes) {
        const m = (k: string): number => median(rs.map((r) => Number(r[k])));
        const row = {
          name: i.name, level: String(level), link: args.tls ? 'tls' : 'plain', runs: rs.length, mbPerS: m('mbPerS'), mbPerRelayCpuS: m('mbPerRelayCpuS'),
          senderCpuSeconds: m('senderCpuSeconds'), receiverCpuSeconds: m('receiverCpuSeconds'), relayCpuSeconds: m('relayCpuSeconds'),
          senderMbPerCpuS: m('senderMbPerCpuS'), receiverMbPerCpuS: m('receiverMbPerCpuS'), wireRatio: m('wireRatio'), exact: rs.every((r) => r.exact),
        };
        summary.push(row);
        console.log(`median ${row.name.padEnd(24)} level ${row.level.padEnd(4)} ${row.link} ${row.mbPerS.toFixed(0)} MB/s, relay CPU ${row.relayCpuSeconds.toFixed(2)} s (sender ${row.senderCpuSeconds.toFixed(2)}, receiver ${row.receiverCpuSeconds.toFixed(2)}): ${row.mbPerRelayCpuS.toFixed(0)} MB of stream per relay CPU-s (sender ${row.senderMbPerCpuS.toFixed(0)}, receiver ${row.receiverMbPerCpuS.toFixed(0)}), wire ${pct(row.wireRatio)} (${row.runs} runs), exact ${row.exact}`);
        continue;
      }
      const row = { name: i.name, level: String(level), runs: rs.length, mbPerS: median(rs.map((r) => Number(r.mbPerS))), mbPerCpuS: median(rs.map((r) => Number(r.mbPerCpuS))), wireRatio: median(rs.map((r) => Number(r.wireRatio))), exact: rs.every((r) => r.exact) };
      summary.push(row);
      console.log(`median ${row.name.padEnd(24)} level ${row.level.padEnd(4)} ${row.mbPerS.toFixed(0)} MB/s, ${row.mbPerCpuS.toFixed(0)} MB of stream per CPU-s, wire ${pct(row.wireRatio)} (${row.runs} runs), exact ${row.exact}`);
    }
  }
  console.log(machineLine());
  const outFile = args.out ?? path.join(root, 'bench', 'results', args.processes ? `relay-live-processes${args.tls ? '-tls' : ''}.json` : 'relay-live.json');
  fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), machine: machineLine(), repeat, summary, live }, null, 1));
  process.exit(live.every((r) => r.exact) ? 0 : 1);
}
// Warm-up (not reported): the relay is a long-running process, so its steady state is what counts,
// not the JIT compiling the codec during the first stream of the table.
{
  const warm = syntheticQemuStream({ seed: 7, pages: 8192, rounds: 3 });
  for (const level of levels) decodeFrames(Buffer.concat(encodeStreams([warm], { cacheBytes: 64 << 20, level }).out), () => undefined);
}
const rows: Row[] = [];
const zstdOf = new Map<string, { z1: number; z3: number; s1: number; s3: number }>();
for (const i of inputs) {
  const [z1, s1] = plainZstd(i.data, 1);
  const [z3, s3] = plainZstd(i.data, 3);
  zstdOf.set(i.name, { z1, z3, s1, s3 });
  rows.push(...run(i.name, [i], levels, zstdOf.get(i.name)!));
}
// Concurrent migrations over one relay pair share the cache: all inputs in one run.
if (inputs.length > 1) {
  const sum = (k: 'z1' | 'z3'): number => inputs.reduce((a, i) => a + zstdOf.get(i.name)![k], 0);
  const z = { z1: sum('z1'), z3: sum('z3'), s1: 0, s3: 0 };
  rows.push(...run(`ALL ${inputs.length} streams, one shared cache`, inputs, levels, z));
}

console.log('');
console.log('stream                                   input MB  lvl  relay wire   zstd-1   zstd-3  relay/zstd3  enc MB/s  dec MB/s  zstd-1 MB/s  exact');
for (const r of rows) {
  console.log(`${r.name.slice(0, 40).padEnd(40)} ${(r.inputBytes / 1e6).toFixed(1).padStart(8)} ${String(r.level).padStart(4)} ${pct(r.ratio).padStart(11)} ${pct(r.zstd1Bytes / r.inputBytes).padStart(8)} ${pct(r.zstd3Bytes / r.inputBytes).padStart(8)} ${pct(r.vsZstd3).padStart(12)} ${r.encodeMBps.toFixed(0).padStart(9)} ${r.decodeMBps.toFixed(0).padStart(9)} ${(r.zstd1MBps ? r.zstd1MBps.toFixed(0) : '-').padStart(12)}  ${r.exact ? 'yes' : 'NO'}`);
}
console.log('');
console.log('share of input by technique (level of first row per stream):');
for (const r of rows.filter((x) => x.level === levels[0])) {
  const parts = Object.entries(r.techniques).filter(([, v]) => v.inputBytes > 0).map(([t, v]) => `${t} ${pct(v.inputBytes / r.inputBytes)}`);
  console.log(`  ${r.name.slice(0, 40).padEnd(40)} ${parts.join(', ')}`);
}
const machine = { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavg: os.loadavg() };
console.log(`\n${machineLine()} (at the end; MB/s are per CPU-second of this process, median of ${repeat} runs, levels interleaved; exactness from a separate untimed decode)`);
const outFile = args.out ?? path.join(root, 'bench', 'results', 'relay-codec.json');
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), machine, cacheBytes, repeat, rows }, null, 1));
console.log(`wrote ${path.relative(root, outFile)}`);
if (rows.some((r) => !r.exact)) process.exitCode = 1;
