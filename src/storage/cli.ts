// `cloudnet agent source ...` / `cloudnet agent target ...`: the storage pre-copy agents, as the
// operator runs them in Pods (src/storage/launch/): credentials come from a mounted Secret
// (--credentials DIR, agent-auth.ts), there is no plaintext mode.
import { parseArgs } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mibFlag, numberFlag } from '../util/flags.ts';
import { logger } from '../util/log.ts';
import { loadCredentials, ownIdentity } from './agent-auth.ts';
import { callAgent, parseHostPort, serveRoutes, type AgentApi } from './http.ts';
import { SourceAgent } from './source.ts';
import { TargetAgent } from './target.ts';

const log = logger('storage-cli');

const USAGE = `usage:
  cloudnet agent target --volume <raw file|block device> --listen <host:port> --http <host:port>
                        --credentials <dir> [--index <file>] [--seed-relay <host:port>]
  cloudnet agent source --disk <raw file|block device> --target <host:port> --target-http <https://host:port>
                        --credentials <dir> --http <host:port> [--qmp <socket>] [--device disk0]
                        [--codec relay|none] [--work-dir <dir>] [--converge-mb 4] [--max-passes 10]
                        [--window-mb 16] [--reconnect-timeout-s 120] [--stall-timeout-s 15] [--no-sync]

--credentials is a directory with ca.crt, tls.crt, tls.key and token (the migration's CA, this
agent's certificate and key, the migration's token). Every connection is mutual TLS 1.3 against
that CA, and every request carries the token.

The target writes the volume and answers with its page index; it exits once the source is done
(the source sends an NBD disconnect when released), after handing what the volume holds to the
receiver relay's seed intake (--seed-relay), where KubeVirt's final disk mirror finds it. The source copies the disk in asynchronous
passes (QEMU dirty bitmaps with --qmp, else hash scans against the target's index) and, with QEMU,
then mirrors every guest write synchronously. HTTPS API: GET /status on both; source POST /verify
(?pause=1 with QEMU) and POST /release (operator only); target GET /index and GET /checksum
(operator and source).`;

export async function run(argv: string[]): Promise<number> {
  const [role, ...rest] = argv;
  if (role === 'target') return runTarget(rest);
  if (role === 'source') return runSource(rest);
  console.log(USAGE);
  return role === '-h' || role === '--help' ? 0 : 2;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

async function runTarget(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    volume: { type: 'string' }, listen: { type: 'string' }, http: { type: 'string' }, index: { type: 'string' }, credentials: { type: 'string' },
    'seed-relay': { type: 'string' },
  } });
  if (!values.volume || !values.listen || !values.http || !values.credentials) {
    console.error(USAGE);
    return 2;
  }
  const credentials = loadCredentials(values.credentials);
  if (ownIdentity(credentials).role !== 'target') throw new Error('--credentials are not the target agent\'s');
  const [host, port] = parseHostPort(values.listen);
  const agent = new TargetAgent({ volumePath: values.volume, host, port, credentials, ...(values.index ? { indexPath: values.index } : {}) });
  const bound = await agent.listen();
  const [hh, hp] = parseHostPort(values.http);
  const api = await serveRoutes(hh, hp, credentials, {
    'GET /status': { roles: ['operator', 'source'], handle: async () => ({ json: agent.status() }) },
    'GET /index': { roles: ['operator', 'source'], handle: async () => {
      const b = agent.indexBytes();
      return b ? { bytes: b } : { status: 404, json: { error: 'no volume open yet' } };
    } },
    'GET /checksum': { roles: ['operator', 'source'], handle: async () => ({ json: { sha256: await agent.checksum() } }) },
  });
  log.info('target agent listening', { data: bound, http: api.port });
  console.log(JSON.stringify({ listening: bound, http: api.port }));
  const how = await Promise.race([untilSignal(), agent.finished.then(() => 'finished' as const)]);
  if (how === 'finished' && values['seed-relay']) {
    // Best effort: without seeds the final mirror still works, it only sends more.
    const [sh, sp] = parseHostPort(values['seed-relay']);
    await agent.seedRelay(sh, sp).catch((e: unknown) => log.warn('could not seed the receiver relay', { error: String(e) }));
  }
  await agent.close();
  await api.close();
  return 0;
}

async function runSource(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' }, 'target-http': { type: 'string' }, qmp: { type: 'string' }, device: { type: 'string' },
      disk: { type: 'string' }, codec: { type: 'string' }, http: { type: 'string' }, 'work-dir': { type: 'string' },
      'converge-mb': { type: 'string' }, 'max-passes': { type: 'string' }, 'window-mb': { type: 'string' }, 'no-sync': { type: 'boolean' },
      'reconnect-timeout-s': { type: 'string' }, 'stall-timeout-s': { type: 'string' }, credentials: { type: 'string' },
    },
  });
  if (!values.target || !values['target-http'] || !values.http || !values.credentials || (!values.qmp && !values.disk)) {
    console.error(USAGE);
    return 2;
  }
  const credentials = loadCredentials(values.credentials);
  if (ownIdentity(credentials).role !== 'source') throw new Error('--credentials are not the source agent\'s');
  const codec = values.codec ?? 'relay';
  if (codec !== 'relay' && codec !== 'none') throw new Error(`--codec must be relay or none, not ${codec}`);
  const [host, port] = parseHostPort(values.target);
  const targetHttp = values['target-http'];
  const seconds = (name: 'reconnect-timeout-s' | 'stall-timeout-s'): number | undefined => {
    const n = numberFlag(name, values[name], undefined, { min: 0.1, unit: 'seconds' });
    return n === undefined ? undefined : n * 1000;
  };
  const convergeBytes = mibFlag('converge-mb', values['converge-mb'], undefined, { min: 0 });
  const windowBytes = mibFlag('window-mb', values['window-mb'], undefined, { min: 0.25 });
  const maxPasses = numberFlag('max-passes', values['max-passes'], undefined, { min: 1, integer: true, unit: 'passes' });
  const reconnectTimeoutMs = seconds('reconnect-timeout-s');
  const stallTimeoutMs = seconds('stall-timeout-s');
  const agent = new SourceAgent({
    targetHost: host, targetPort: port, codec, credentials,
    ...(values.qmp ? { qmp: values.qmp } : {}),
    ...(values.device ? { device: values.device } : {}),
    ...(values.disk ? { diskPath: values.disk } : {}),
    workDir: values['work-dir'] ?? mkdtempSync(join(tmpdir(), 'cloudnet-agent-')),
    ...(convergeBytes !== undefined ? { convergeBytes } : {}),
    ...(maxPasses !== undefined ? { maxPasses } : {}),
    ...(windowBytes !== undefined ? { windowBytes } : {}),
    ...(reconnectTimeoutMs !== undefined ? { reconnectTimeoutMs } : {}),
    ...(stallTimeoutMs !== undefined ? { stallTimeoutMs } : {}),
    ...(values['no-sync'] ? { sync: false } : {}),
    targetChecksum: async () => {
      const body = JSON.parse((await callAgent(credentials, 'target', targetHttp, '/checksum', { timeoutMs: 600_000 })).toString('utf8')) as { sha256?: unknown };
      if (typeof body.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(body.sha256)) throw new Error('the target agent sent no checksum');
      return body.sha256;
    },
  });
  let releasedByApi: () => void = () => undefined;
  const released = new Promise<void>((r) => (releasedByApi = r));
  const [hh, hp] = parseHostPort(values.http);
  const api: AgentApi = await serveRoutes(hh, hp, credentials, {
    'GET /status': { roles: ['operator'], handle: async () => ({ json: await agent.status() }) },
    'POST /verify': { roles: ['operator'], handle: async (url) => ({ json: await agent.verify({ pause: url.searchParams.get('pause') === '1', resume: url.searchParams.get('resume') === '1' }) }) },
    'POST /release': { roles: ['operator'], handle: async () => {
      await agent.release();
      releasedByApi();
      return { json: { released: true } };
    } },
  });
  log.info('source agent serving', { http: api.port });
  agent.start().catch(() => undefined); // failures are in /status
  await Promise.race([untilSignal(), released]);
  await agent.release();
  await api.close();
  const st = await agent.status();
  console.log(JSON.stringify(st));
  return st.phase === 'Failed' ? 1 : 0;
}
