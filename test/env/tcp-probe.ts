// A small TCP measuring tool run inside the site namespaces (no iperf3 needed), and the helpers
// that drive it from a test. One file on purpose: the same module is the CLI and the library.
//
//   node tcp-probe.ts sink <port> [progressMs] [hash]      counts, optionally hashes, replies a summary
//   node tcp-probe.ts send <host> <port> <bytes> <rttSamples> [hash]
//
// RTT is the TCP connect time (SYN → SYN/ACK, one round trip) of idle connections. Throughput
// is reported two ways: over the whole transfer (includes slow start) and "steady", the slope of
// bytes over time at the sink from the moment 30% of the bytes had arrived to the last byte.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface SinkSummary {
  bytes: number;
  sha256: string | null;
  /** Goodput in bit/s over the last 70% of the bytes (least-squares slope). */
  steadyBps: number;
  /** From first to last byte at the sink, in ms. */
  durationMs: number;
  /** The address the sink saw the connection come from (tells a relayed flow from a direct one). */
  remote?: string;
}

export interface TransferResult {
  rttMs: number[];
  rttMedianMs: number;
  bytes: number;
  /** From connect to the sink's summary, in ms. */
  elapsedMs: number;
  /** Goodput in bit/s over the whole transfer including slow start. */
  goodputBps: number;
  steadyBps: number;
  sha256Match: boolean | null;
  /** Where the sink saw the data come from. */
  sinkRemote?: string;
}

const STEADY_FROM = 0.3;

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Least-squares slope of bytes over time, in bit/s. A fit over all samples, rather than the two
 * end points, keeps one late read (a descheduled sink on a busy machine) from skewing the rate.
 */
export function steadyRate(samples: ReadonlyArray<readonly [number, number]>): number {
  const n = samples.length;
  if (n < 2) return NaN;
  let st = 0;
  let sb = 0;
  for (const [t, b] of samples) {
    st += t;
    sb += b;
  }
  const mt = st / n;
  const mb = sb / n;
  let cov = 0;
  let vt = 0;
  for (const [t, b] of samples) {
    cov += (t - mt) * (b - mb);
    vt += (t - mt) ** 2;
  }
  return vt > 0 ? ((cov / vt) * 8 * 1000) : NaN;
}

// ---------------------------------------------------------------- CLI side (inside a namespace)

function sinkMain(port: number, progressMs: number, hash: boolean): void {
  let totalAllConns = 0;
  const server = createServer((sock: Socket) => {
    const h = hash ? createHash('sha256') : null;
    const samples: Array<[number, number]> = [];
    let bytes = 0;
    let first = 0;
    let last = 0;
    sock.on('data', (d: Buffer) => {
      const now = performance.now();
      if (bytes === 0) first = now;
      bytes += d.length;
      totalAllConns += d.length;
      last = now;
      h?.update(d);
      if (samples.length === 0 || now - samples[samples.length - 1][0] >= 2) samples.push([now, bytes]);
    });
    sock.on('end', () => {
      if (bytes === 0) {
        sock.end();
        return;
      }
      samples.push([last, bytes]);
      const summary: SinkSummary = {
        bytes,
        sha256: h ? h.digest('hex') : null,
        steadyBps: steadyRate(samples.filter(([, b]) => b >= bytes * STEADY_FROM)),
        durationMs: last - first,
        ...(sock.remoteAddress ? { remote: sock.remoteAddress.replace(/^::ffff:/, '') } : {}),
      };
      sock.end(JSON.stringify(summary) + '\n');
    });
    sock.on('error', () => undefined);
  });
  server.listen(port, '0.0.0.0', () => {
    process.stdout.write(JSON.stringify({ event: 'listening', port }) + '\n');
    if (progressMs > 0) {
      setInterval(() => process.stdout.write(JSON.stringify({ event: 'progress', bytes: totalAllConns }) + '\n'), progressMs);
    }
  });
}

function connectOnce(host: string, port: number): Promise<{ sock: Socket; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = connect({ host, port, noDelay: true });
    sock.once('connect', () => resolve({ sock, ms: performance.now() - t0 }));
    sock.once('error', reject);
  });
}

async function sendMain(host: string, port: number, total: number, rttSamples: number, hash: boolean): Promise<void> {
  const rttMs: number[] = [];
  for (let i = 0; i < rttSamples; i++) {
    const { sock, ms } = await connectOnce(host, port);
    rttMs.push(ms);
    sock.end();
    await new Promise((r) => setTimeout(r, 20));
  }
  const block = randomBytes(1 << 20);
  const h = hash ? createHash('sha256') : null;
  const t0 = performance.now();
  const { sock } = await connectOnce(host, port);
  let reply = '';
  sock.setEncoding('utf8');
  const summaryP = new Promise<SinkSummary>((resolve, reject) => {
    sock.on('data', (d: string) => (reply += d));
    sock.on('end', () => {
      try {
        resolve(JSON.parse(reply) as SinkSummary);
      } catch {
        reject(new Error(`sink sent no summary: ${JSON.stringify(reply)}`));
      }
    });
    sock.on('error', reject);
  });
  for (let sent = 0; sent < total; ) {
    const chunk = block.subarray(0, Math.min(block.length, total - sent));
    h?.update(chunk);
    sent += chunk.length;
    if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
  }
  sock.end();
  const summary = await summaryP;
  const elapsedMs = performance.now() - t0;
  const result: TransferResult = {
    rttMs,
    rttMedianMs: median(rttMs),
    bytes: summary.bytes,
    elapsedMs,
    goodputBps: (summary.bytes * 8) / (elapsedMs / 1000),
    steadyBps: summary.steadyBps,
    sha256Match: h && summary.sha256 ? h.digest('hex') === summary.sha256 : null,
    ...(summary.remote ? { sinkRemote: summary.remote } : {}),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------- library side (in the test)

const scriptPath = fileURLToPath(import.meta.url);

function spawnInNs(ns: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, scriptPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface Sink {
  readonly port: number;
  /** Bytes received so far over all connections (updated every progressMs). */
  progressBytes(): number;
  stop(): Promise<void>;
}

/** Starts a sink in namespace ns and resolves once it listens. */
export function startSink(ns: string, port: number, opts: { progressMs?: number; hash?: boolean } = {}): Promise<Sink> {
  const child = spawnInNs(ns, ['sink', String(port), String(opts.progressMs ?? 0), opts.hash ? 'hash' : '']);
  let progress = 0;
  let err = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcp-probe sink did not listen within 10 s: ${err}`));
    }, 10_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { event: string; bytes?: number };
        buf = buf.slice(nl + 1);
        if (msg.event === 'listening') {
          clearTimeout(timer);
          resolve({
            port,
            progressBytes: () => progress,
            async stop() {
              if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
              await exited;
            },
          });
        } else if (msg.event === 'progress') {
          progress = msg.bytes ?? progress;
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcp-probe sink exited (${code}): ${err}`));
    });
  });
}

/** Sends `bytes` from namespace ns to host:port after rttSamples connect-time probes. */
export function runTransfer(
  ns: string,
  host: string,
  port: number,
  bytes: number,
  opts: { rttSamples?: number; hash?: boolean; timeoutMs?: number } = {},
): Promise<TransferResult> {
  const child = spawnInNs(ns, ['send', host, String(port), String(bytes), String(opts.rttSamples ?? 5), opts.hash ? 'hash' : '']);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcp-probe send to ${host}:${port} did not finish within ${opts.timeoutMs ?? 60_000} ms`));
    }, opts.timeoutMs ?? 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`tcp-probe send exited (${code}): ${err.trim()}`));
      else resolve(JSON.parse(out) as TransferResult);
    });
  });
}

if (process.argv[1] === scriptPath) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'sink') {
    sinkMain(Number(rest[0]), Number(rest[1] ?? 0), rest[2] === 'hash');
  } else if (mode === 'send') {
    sendMain(rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3] ?? 5), rest[4] === 'hash').catch((e: unknown) => {
      process.stderr.write(`tcp-probe send: ${String(e)}\n`);
      process.exit(1);
    });
  } else {
    process.stderr.write('usage: tcp-probe.ts sink <port> [progressMs] [hash] | send <host> <port> <bytes> <rttSamples> [hash]\n');
    process.exit(2);
  }
}
