// Helpers of the storage pre-copy integration tests: a throttling TCP proxy that can be cut (the
// WAN link between the agents) and a target agent run as a real `cloudnet agent target` process.
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.ts';
import { onExit } from '../helpers/exit.ts';
import { requireTool } from '../env/netns.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Link {
  port: number;
  /** Bytes forwarded source → target. */
  readonly bytesForward: number;
  /** Bytes forwarded target → source (acknowledgements, NBD replies). */
  readonly bytesBackward: number;
  /** Drops every connection and refuses new ones for `ms`. */
  cut(ms: number): void;
  close(): Promise<void>;
}

/** A loopback proxy to `target` (a TCP port or a unix socket path), shaping the source→target
 *  direction to `rateBps` bytes/s. */
export async function startLink(target: number | string, rateBps: number): Promise<Link> {
  const conns = new Set<Socket>();
  let downUntil = 0;
  let nextFree = 0;
  let forwarded = 0;
  let backward = 0;
  const server: Server = createServer((client) => {
    if (Date.now() < downUntil) {
      client.destroy();
      return;
    }
    const upstream = typeof target === 'string' ? createConnection({ path: target }) : createConnection({ host: '127.0.0.1', port: target });
    conns.add(client);
    conns.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.on('data', (d: Buffer) => {
      backward += d.length;
      client.write(d);
    });
    client.on('data', (d: Buffer) => {
      const now = performance.now();
      nextFree = Math.max(now, nextFree) + (d.length / rateBps) * 1000;
      client.pause();
      setTimeout(() => {
        if (upstream.destroyed) return;
        forwarded += d.length;
        upstream.write(d);
        client.resume();
      }, Math.max(0, nextFree - now));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    get bytesForward() { return forwarded; },
    get bytesBackward() { return backward; },
    cut(ms: number) {
      downUntil = Date.now() + ms;
      for (const c of conns) c.destroy();
      conns.clear();
    },
    close: () => new Promise<void>((r) => {
      for (const c of conns) c.destroy();
      server.close(() => r());
    }),
  };
}

export interface TargetProcess {
  port: number;
  httpPort: number;
  child: ChildProcess;
  /** SIGKILL (no clean shutdown: the index is rebuilt from the volume on restart). */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** Runs `cloudnet agent target` (optionally with a file size limit, to make writes fail). */
export async function startTargetProcess(volume: string, opts: { port?: number; httpPort?: number; fsizeLimit?: number } = {}): Promise<TargetProcess> {
  requireTool('setpriv', 'util-linux');
  if (opts.fsizeLimit) requireTool('prlimit', 'util-linux');
  const port = opts.port ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const node = join(repoRoot, 'node_modules/.bin/node');
  const cmd = ['setpriv', '--pdeathsig', 'KILL'];
  if (opts.fsizeLimit) cmd.push('prlimit', `--fsize=${opts.fsizeLimit}`, '--');
  cmd.push(node, join(repoRoot, 'src/cli.ts'), 'agent', 'target', '--volume', volume, '--listen', `127.0.0.1:${port}`, '--http', `127.0.0.1:${httpPort}`);
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  const unregister = onExit(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<void>((r) => child.once('exit', () => { unregister(); r(); }));
  await new Promise<void>((resolveReady, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`target agent did not start: ${stderr}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"listening"')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`target agent exited (${code}): ${stderr}`));
    });
  });
  return {
    port, httpPort, child,
    async kill() { child.kill('SIGKILL'); await exited; },
    async stop() { child.kill('SIGTERM'); await exited; },
  };
}

export async function targetChecksum(httpPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/checksum`);
  return ((await res.json()) as { sha256: string }).sha256;
}
