// HTTP(S) servers for operator-facing endpoints, as a kubebuilder v4 main.go serves metrics:
//   secure (default): HTTPS, and each request authenticated (TokenReview) and authorized
//     (SubjectAccessReview: get on the non-resource URL of the request) by the API server
//     (metrics-auth.ts);
//   certDir: the serving certificate is DIR/tls.crt and DIR/tls.key (e.g. a cert-manager Secret),
//     re-read when they change; without it a self-signed one is made at start;
//   secure=false: plain HTTP without authentication (only behind a trusted proxy, or bound to
//     127.0.0.1).
// Used by the operator (/metrics) and the site gateway (/metrics, /status), which both live on
// networks others reach (the gateway on its node's host network).
import { readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { logger } from '../util/log.ts';
import { selfSignedCert, type ServingCert } from '../util/self-signed-cert.ts';
import { kubeMetricsAuth, type MetricsAuthorizer } from './metrics-auth.ts';
import type { RestClient } from './rest.ts';

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

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Listens on `bind` (see parseBindAddress) with `handler`; HTTPS when `tls` is given. */
export async function serveHttp(bind: string, handler: Handler, tls?: ServingCert): Promise<BoundServer | undefined> {
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

/**
 * `handler` behind the API server's decision: 401 without a valid bearer token, 403 when its user
 * may not `get` the path, 500 when the reviews fail. Every path is checked except `openPaths`, so
 * an unauthenticated caller cannot even learn which ones exist.
 */
export function authorized(authorizer: MetricsAuthorizer, handler: Handler, openPaths: readonly string[] = []): Handler {
  return async (req, res) => {
    const path = req.url?.split('?')[0] ?? '/';
    if (!openPaths.includes(path)) {
      const d = await authorizer.check(req.headers.authorization, path);
      if (d.status !== 200) {
        res.statusCode = d.status;
        res.setHeader('content-type', 'text/plain');
        if (d.status === 401) res.setHeader('www-authenticate', 'Bearer');
        res.end(`${d.message}\n`);
        return;
      }
    }
    await handler(req, res);
  };
}

/** GET /metrics from `registry`; 404 for anything else. */
export function metricsHandler(registry: Registry): Handler {
  return async (req, res) => {
    const path = req.url?.split('?')[0] ?? '/';
    if (path !== '/metrics') {
      res.statusCode = 404;
      res.end('not found\n');
      return;
    }
    const body = await registry.metrics();
    res.setHeader('content-type', registry.contentType);
    res.end(body);
  };
}

export interface SecureServing {
  bindAddress: string;
  secure: boolean;
  certDir?: string;
}

export interface SecureServingOptions {
  /** Common name of the self-signed certificate (made when there is no certDir). */
  commonName: string;
  /** Further subjectAltNames of the self-signed certificate (localhost, the host name, 127.0.0.1 and ::1 always). */
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Paths answered without authentication (only ones that reveal and change nothing). */
  openPaths?: readonly string[];
  /** Which component logs certificate reloads. */
  component?: string;
}

const CERT_CHECK_MS = 60_000;

function readCert(dir: string): ServingCert {
  return { certPem: readFileSync(join(dir, 'tls.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'tls.key'), 'utf8') };
}

function certStamp(dir: string): string {
  return ['tls.crt', 'tls.key'].map((f) => statSync(join(dir, f)).mtimeMs).join('/');
}

/**
 * Serves `handler` as configured: with `secure`, HTTPS and every request (but `openPaths`)
 * checked by the API server that `rest` talks to. close() also stops watching the certificate.
 */
export async function serveSecure(o: SecureServing, handler: Handler, rest: RestClient, so: SecureServingOptions): Promise<BoundServer | undefined> {
  if (!o.secure) return serveHttp(o.bindAddress, handler);
  const tls = o.certDir ? readCert(o.certDir) : selfSignedCert({
    commonName: so.commonName, dnsNames: ['localhost', hostname(), ...(so.dnsNames ?? [])], ipAddresses: ['127.0.0.1', '::1', ...(so.ipAddresses ?? [])],
  });
  const bound = await serveHttp(o.bindAddress, authorized(kubeMetricsAuth(rest), handler, so.openPaths), tls);
  if (!bound || !o.certDir) return bound;
  // Mounted Secrets are updated in place (cert-manager renews before expiry): swap the context.
  const dir = o.certDir;
  const log = logger(so.component ?? 'secure-serving');
  let stamp = certStamp(dir);
  const timer = setInterval(() => {
    try {
      const now = certStamp(dir);
      if (now === stamp) return;
      const next = readCert(dir);
      (bound.server as unknown as HttpsServer).setSecureContext({ cert: next.certPem, key: next.keyPem });
      stamp = now;
      log.info('serving certificate reloaded', { dir });
    } catch (err) {
      log.warn('serving certificate not reloaded', { dir, error: err instanceof Error ? err.message : String(err) });
    }
  }, CERT_CHECK_MS);
  timer.unref();
  return { ...bound, close: () => { clearInterval(timer); return bound.close(); } };
}
