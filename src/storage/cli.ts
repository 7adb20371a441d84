// `cloudnet agent source ...` / `cloudnet agent target ...`: the storage pre-copy agents.
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logger } from '../util/log.ts';
import { parseHostPort, serveRoutes } from './http.ts';
import { SourceAgent } from './source.ts';
import { TargetAgent } from './target.ts';

const log = logger('storage-cli');

const USAGE = `usage:
  cloudnet agent target --volume <raw file> --listen <host:port> [--http <host:port>]
  cloudnet agent source --target <host:port> [--target-http <url>] [--qmp <socket>] [--device disk0]
                        [--disk <raw file|block device>] [--codec relay|none] [--http <host:port>]
                        [--work-dir <dir>] [--converge-mb 4] [--max-passes 10] [--window-mb 16] [--no-sync]

The target writes the volume and answers with its page index; the source copies the disk in
asynchronous passes (QEMU dirty bitmaps via --qmp, else hash scans), then mirrors every guest
write synchronously (QEMU write-blocking mirror). Both serve JSON on --http: GET /status,
source POST /verify?pause=1 and POST /release, target GET /index and GET /checksum.`;

export async function run(argv: string[]): Promise<number> {
  const [role, ...rest] = argv;
  if (role === 'target') return runTarget(rest);
  if (role === 'source') return runSource(rest);
  console.log(USAGE);
  return role === '-h' || role === '--help' ? 0 : 2;
}

function closeHttp(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

async function runTarget(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { volume: { type: 'string' }, listen: { type: 'string' }, http: { type: 'string' }, index: { type: 'string' } } });
  if (!values.volume || !values.listen) {
    console.error(USAGE);
    return 2;
  }
  const [host, port] = parseHostPort(values.listen);
  const agent = new TargetAgent({ volumePath: values.volume, host, port, ...(values.index ? { indexPath: values.index } : {}) });
  const bound = await agent.listen();
  let http: Server | undefined;
  if (values.http) {
    const [hh, hp] = parseHostPort(values.http);
    const { server, port: p } = await serveRoutes(hh, hp, {
      'GET /status': async () => ({ json: agent.status() }),
      'GET /index': async () => {
        const b = agent.indexBytes();
        return b ? { bytes: b } : { status: 404, json: { error: 'no volume open yet' } };
      },
      'GET /checksum': async () => ({ json: { sha256: await agent.checksum() } }),
    });
    http = server;
    log.info('target http', { port: p });
  }
  console.log(JSON.stringify({ listening: bound }));
  await untilSignal();
  await agent.close();
  await closeHttp(http);
  return 0;
}

async function runSource(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' }, 'target-http': { type: 'string' }, qmp: { type: 'string' }, device: { type: 'string' },
      disk: { type: 'string' }, codec: { type: 'string' }, http: { type: 'string' }, 'work-dir': { type: 'string' },
      'converge-mb': { type: 'string' }, 'max-passes': { type: 'string' }, 'window-mb': { type: 'string' }, 'no-sync': { type: 'boolean' },
      'reconnect-timeout-s': { type: 'string' },
    },
  });
  if (!values.target || (!values.qmp && !values.disk)) {
    console.error(USAGE);
    return 2;
  }
  const codec = values.codec ?? 'relay';
  if (codec !== 'relay' && codec !== 'none') throw new Error(`--codec must be relay or none, not ${codec}`);
  const [host, port] = parseHostPort(values.target);
  const targetHttp = values['target-http'];
  const mb = (v: string | undefined) => (v ? Number(v) * (1 << 20) : undefined);
  const agent = new SourceAgent({
    targetHost: host, targetPort: port, codec,
    ...(values.qmp ? { qmp: values.qmp } : {}),
    ...(values.device ? { device: values.device } : {}),
    ...(values.disk ? { diskPath: values.disk } : {}),
    workDir: values['work-dir'] ?? mkdtempSync(join(tmpdir(), 'cloudnet-agent-')),
    ...(values['converge-mb'] ? { convergeBytes: mb(values['converge-mb']) } : {}),
    ...(values['max-passes'] ? { maxPasses: Number(values['max-passes']) } : {}),
    ...(values['window-mb'] ? { windowBytes: mb(values['window-mb']) } : {}),
    ...(values['reconnect-timeout-s'] ? { reconnectTimeoutMs: Number(values['reconnect-timeout-s']) * 1000 } : {}),
    ...(values['no-sync'] ? { sync: false } : {}),
    ...(targetHttp ? { targetChecksum: async () => ((await (await fetch(`${targetHttp}/checksum`)).json()) as { sha256: string }).sha256 } : {}),
  });
  let releasedByApi: () => void = () => undefined;
  const released = new Promise<void>((r) => (releasedByApi = r));
  let http: Server | undefined;
  if (values.http) {
    const [hh, hp] = parseHostPort(values.http);
    const { server, port: p } = await serveRoutes(hh, hp, {
      'GET /status': async () => ({ json: await agent.status() }),
      'POST /verify': async (_req, url) => ({ json: await agent.verify({ pause: url.searchParams.get('pause') === '1', resume: url.searchParams.get('resume') === '1' }) }),
      'POST /release': async () => {
        await agent.release();
        releasedByApi();
        return { json: { released: true } };
      },
    });
    http = server;
    log.info('source http', { port: p });
  }
  agent.start().catch(() => undefined); // failures are in /status
  await Promise.race([untilSignal(), released]);
  await agent.release();
  await closeHttp(http);
  const st = await agent.status();
  console.log(JSON.stringify(st));
  return st.phase === 'Failed' ? 1 : 0;
}
