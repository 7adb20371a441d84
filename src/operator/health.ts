// The operator's two HTTP endpoints, on separate ports as in kubebuilder projects:
//   metrics: /metrics (Prometheus text format from the manager's registry); by default HTTPS, and
//            every request authenticated and authorized by the API server (metrics-auth.ts)
//   probes:  /healthz (200 while the event loop serves requests), /readyz (200 once caches synced);
//            plain HTTP without authentication, because the kubelet probes them
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { MetricsAuthorizer } from './metrics-auth.ts';
import type { ServingCert } from './self-signed-cert.ts';

export interface BoundServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** ":8080" → all interfaces; "127.0.0.1:0" → loopback, any port; "0" disables (resolves undefined). */
export function parseBindAddress(bind: string): { host?: string; port: number } | undefined {
  if (bind === '0' || bind === '') return undefined;
  const i = bind.lastIndexOf(':');
  const host = i > 0 ? bind.slice(0, i).replace(/^\[|\]$/g, '') : undefined;
  const port = Number(i >= 0 ? bind.slice(i + 1) : bind);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid bind address: ${bind}`);
  return { host, port };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

async function listen(bind: string, handler: Handler, tls?: ServingCert): Promise<BoundServer | undefined> {
  const addr = parseBindAddress(bind);
  if (!addr) return undefined;
  const guarded: Handler = (req, res) => {
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(err instanceof Error ? err.message : 'internal error');
    });
  };
  // HTTP/1.1 only and TLS 1.2+, like controller-runtime's metrics server with HTTP/2 off.
  const server = tls ? createTlsServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2' }, guarded) : createServer(guarded);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export interface MetricsServerOptions {
  /** Serve HTTPS with this certificate. */
  tls?: ServingCert;
  /** Check every request with the API server (401 without a valid token, 403 without the right). */
  authorizer?: MetricsAuthorizer;
}

export function startMetricsServer(bind: string, registry: Registry, opts: MetricsServerOptions = {}): Promise<BoundServer | undefined> {
  return listen(bind, async (req, res) => {
    const path = req.url?.split('?')[0] ?? '/';
    if (opts.authorizer) {
      // Every path is checked, so an unauthenticated caller cannot even learn which ones exist.
      const d = await opts.authorizer.check(req.headers.authorization, path);
      if (d.status !== 200) {
        res.statusCode = d.status;
        res.setHeader('content-type', 'text/plain');
        if (d.status === 401) res.setHeader('www-authenticate', 'Bearer');
        res.end(`${d.message}\n`);
        return;
      }
    }
    if (path !== '/metrics') {
      res.statusCode = 404;
      res.end('not found\n');
      return;
    }
    const body = await registry.metrics();
    res.setHeader('content-type', registry.contentType);
    res.end(body);
  }, opts.tls);
}

export interface ProbeChecks {
  ready(): boolean;
}

export function startProbeServer(bind: string, checks: ProbeChecks): Promise<BoundServer | undefined> {
  return listen(bind, (req, res) => {
    const path = req.url?.split('?')[0];
    res.setHeader('content-type', 'text/plain');
    if (path === '/healthz' || path === '/livez') {
      res.end('ok');
    } else if (path === '/readyz') {
      const ok = checks.ready();
      res.statusCode = ok ? 200 : 503;
      res.end(ok ? 'ok' : 'informers not synced');
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });
}
