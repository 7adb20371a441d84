// The sender relay's registration API, for the operator only: every request carries the bearer
// token from the relay's Secret (compared in constant time); over TCP the API speaks TLS only, over
// a unix socket (same host or pod) file permissions guard it too.
//   PUT    /v1/registrations/{migrationID}  register (or update) a migration's flows and settings
//   DELETE /v1/registrations/{migrationID}  release them (sessions already open keep running)
//   GET    /v1/registrations                 what is registered, with the local port of each flow
//   GET    /v1/stats                         the sender's stats (sessions name their migration)
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { logger } from '../../util/log.ts';
import { parseRegistration, RegistrationError, isMigrationID } from './flows.ts';
import type { FlowRegistry } from './registry.ts';
import type { HostPort } from './net-util.ts';
import type { StatsSource } from './stats-server.ts';

const log = logger('relay-api');
const MAX_BODY = 64 << 10;

export type ApiListen = { kind: 'tcp'; addr: HostPort; cert: Buffer; key: Buffer } | { kind: 'unix'; path: string };

export interface ApiOptions {
  listen: ApiListen;
  token: string;
  registry: FlowRegistry;
  stats: StatsSource;
}

const digestOf = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

/** True when the request carries exactly the token (no timing difference on a mismatch). */
export function authorized(header: string | undefined, tokenDigest: Buffer): boolean {
  const m = /^Bearer ([^\s]+)$/.exec(header ?? '');
  return !!m && crypto.timingSafeEqual(digestOf(m[1]), tokenDigest);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) { reject(new RegistrationError(413, 'body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown); } catch { reject(new RegistrationError(400, 'body is not JSON')); }
    });
    req.on('error', reject);
  });
}

export async function serveApi(o: ApiOptions): Promise<http.Server> {
  if (o.token.length < 16) throw new Error('the relay API token must be at least 16 characters');
  const tokenDigest = digestOf(o.token);
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void handle(req, res).catch((err: unknown) => {
      const status = err instanceof RegistrationError ? err.status : 500;
      if (status >= 500) log.error('relay API request failed', { method: req.method ?? '', path: req.url ?? '', error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) send(res, status, { error: err instanceof Error ? err.message : String(err) });
    });
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://relay');
    if (url.pathname === '/healthz') { send(res, 200, { ok: true }); return; }
    if (!authorized(req.headers.authorization, tokenDigest)) {
      log.warn('relay API request refused: bad or missing token', { method: req.method ?? '', path: url.pathname });
      send(res, 401, { error: 'unauthorized' });
      return;
    }
    const m = /^\/v1\/registrations(?:\/([^/]+))?$/.exec(url.pathname);
    if (m && m[1] !== undefined) {
      const id = decodeURIComponent(m[1]);
      if (!isMigrationID(id)) throw new RegistrationError(400, 'bad migration ID');
      if (req.method === 'PUT') { send(res, 200, await o.registry.put(parseRegistration(await readBody(req), id))); return; }
      if (req.method === 'DELETE') { send(res, (await o.registry.delete(id)) ? 200 : 404, {}); return; }
      if (req.method === 'GET') { const s = o.registry.get(id); send(res, s ? 200 : 404, s ?? {}); return; }
      throw new RegistrationError(405, 'method not allowed');
    }
    if (m && req.method === 'GET') { send(res, 200, { registrations: o.registry.list() }); return; }
    if (url.pathname === '/v1/stats' && req.method === 'GET') { send(res, 200, o.stats.stats()); return; }
    send(res, 404, { error: 'not found' });
  };
  const l = o.listen;
  const server = l.kind === 'tcp'
    ? https.createServer({ cert: l.cert, key: l.key, minVersion: 'TLSv1.3' }, handler)
    : http.createServer(handler);
  if (l.kind === 'unix') fs.rmSync(l.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => { server.off('error', reject); resolve(); };
    if (l.kind === 'tcp') server.listen(l.addr.port, l.addr.host, done);
    else server.listen(l.path, done);
  });
  if (l.kind === 'unix') fs.chmodSync(l.path, 0o600);
  log.info('relay API listening', { listen: l.kind === 'tcp' ? `https://${l.addr.host}:${l.addr.port}` : `unix:${l.path}` });
  return server;
}
