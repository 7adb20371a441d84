// The agents' small HTTP API (JSON over HTTPS with client certificates, agent-auth.ts), used by
// the operator's storage provider, by the source agent (target checksum) and by tests:
//   source: GET /status, POST /verify[?pause=1&resume=1], POST /release     (operator only)
//   target: GET /status, GET /index (PageIndex bytes), GET /checksum        (operator, source)
// Each route names the roles it serves. A request passes only with a certificate of the
// migration's CA (else the TLS handshake fails) whose role the route allows (else 403) and the
// migration's token as `Authorization: Bearer` (else 401). Error bodies never carry details:
// whatever went wrong is in the agent's log, not in a reply someone else might copy around.
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { logger } from '../util/log.ts';
import { clientTlsOptions, peerRole, serverTlsOptions, tokenMatches, type AgentCredentials, type AgentRole } from './agent-auth.ts';

const log = logger('storage-http');

export interface RouteResult {
  status?: number;
  json?: unknown;
  bytes?: Buffer;
}

export interface Route {
  roles: readonly AgentRole[];
  handle(url: URL, caller: AgentRole): Promise<RouteResult>;
}

function reply(res: ServerResponse, status: number, json: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

export interface AgentApi {
  server: Server;
  port: number;
  /** Requests refused (bad token, wrong role) and TLS handshakes refused (no or foreign certificate). */
  refused(): number;
  close(): Promise<void>;
}

export async function serveRoutes(host: string, port: number, creds: AgentCredentials, routes: Record<string, Route>): Promise<AgentApi> {
  let refused = 0;
  const server = createServer(serverTlsOptions(creds), (req, res) => {
    const url = new URL(req.url ?? '/', 'https://agent');
    const role = peerRole(creds, (req.socket as TLSSocket).getPeerCertificate());
    if (!tokenMatches(creds.token, bearer(req))) {
      refused++;
      reply(res, 401, { error: 'unauthorized' });
      return;
    }
    const route = routes[`${req.method ?? 'GET'} ${url.pathname}`];
    if (!route) {
      reply(res, 404, { error: 'no such route' });
      return;
    }
    if (!role || !route.roles.includes(role)) {
      refused++;
      reply(res, 403, { error: 'forbidden' });
      return;
    }
    route.handle(url, role).then(
      (r) => {
        if (r.bytes) res.writeHead(r.status ?? 200, { 'content-type': 'application/octet-stream' }).end(r.bytes);
        else reply(res, r.status ?? 200, r.json ?? {});
      },
      (err: unknown) => {
        log.warn('request failed', { path: url.pathname, error: String(err) });
        reply(res, 500, { error: 'internal error' });
      },
    );
  });
  server.on('tlsClientError', () => { refused++; });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr ? addr.port : port,
    refused: () => refused,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export class AgentHttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface AgentCall {
  method?: 'GET' | 'POST';
  signal?: AbortSignal;
  timeoutMs?: number;
  /** A reply larger than this is an error (default 1 MiB): a peer cannot make the caller buffer without bound. */
  maxBytes?: number;
}

/**
 * One request to an agent at `base` (https://ip:port, built by the caller from a Pod it created),
 * which must prove it is the `expect` agent of the migration. Returns the body; a non-2xx status
 * is an AgentHttpError that names only the status, never the body.
 */
export function callAgent(creds: AgentCredentials, expect: AgentRole, base: string, path: string, o: AgentCall = {}): Promise<Buffer> {
  const url = new URL(path, base);
  if (url.protocol !== 'https:') return Promise.reject(new Error('agent URLs are https'));
  const maxBytes = o.maxBytes ?? 1 << 20;
  const signal = AbortSignal.any([o.signal ?? new AbortController().signal, AbortSignal.timeout(o.timeoutMs ?? 10_000)]);
  return new Promise((resolve, reject) => {
    const req = request(url, { ...clientTlsOptions(creds, expect), method: o.method ?? 'GET', signal, headers: { authorization: `Bearer ${creds.token}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > maxBytes) {
          req.destroy(new Error(`${o.method ?? 'GET'} ${url.pathname}: reply larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(d);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) reject(new AgentHttpError(status, `${o.method ?? 'GET'} ${url.pathname}: HTTP ${status}`));
        else resolve(Buffer.concat(chunks));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** "host:port" or ":port" → [host, port]. */
export function parseHostPort(s: string, defaultHost = '127.0.0.1'): [string, number] {
  const i = s.lastIndexOf(':');
  if (i < 0) throw new Error(`expected host:port, got ${s}`);
  const host = s.slice(0, i).replace(/^\[|\]$/g, '') || defaultHost;
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in ${s}`);
  return [host, port];
}
