// The agents' small HTTP API (JSON), used by the operator's storage provider and by tests:
//   source: GET /status, POST /verify[?pause=1&resume=1], POST /release, GET /healthz
//   target: GET /status, GET /index (PageIndex bytes, for seeding a relay cache), GET /checksum
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { logger } from '../util/log.ts';

const log = logger('storage-http');

export type Route = (req: IncomingMessage, url: URL) => Promise<{ status?: number; json?: unknown; bytes?: Buffer }>;

export async function serveRoutes(host: string, port: number, routes: Record<string, Route>): Promise<{ server: Server; port: number }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const route = routes[`${req.method ?? 'GET'} ${url.pathname}`] ?? (url.pathname === '/healthz' ? async () => ({ json: { ok: true } }) : undefined);
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method} ${url.pathname}` }));
      return;
    }
    route(req, url).then(
      (r) => {
        if (r.bytes) res.writeHead(r.status ?? 200, { 'content-type': 'application/octet-stream' }).end(r.bytes);
        else res.writeHead(r.status ?? 200, { 'content-type': 'application/json' }).end(JSON.stringify(r.json ?? {}));
      },
      (err: unknown) => {
        log.warn('request failed', { path: url.pathname, error: String(err) });
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
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
