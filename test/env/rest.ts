// A raw JSON client for test clusters. client-node's typed serializer drops keys it does not
// model under their wire names (it silently stripped `x-kubernetes-int-or-string` from CRD
// schemas given as plain objects), so manifests go over the wire exactly as written.
import { request } from 'node:https';

export interface RestCredentials {
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface RestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
  timeoutMs?: number;
}

export class KubeRequestError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly body: string;

  constructor(method: string, path: string, code: number, body: string) {
    let reason = '';
    let message = body;
    try {
      const status = JSON.parse(body) as { reason?: string; message?: string };
      reason = status.reason ?? '';
      message = status.message ?? body;
    } catch {
      // not a Status object
    }
    super(`${method} ${path}: HTTP ${code} ${reason}: ${message}`);
    this.code = code;
    this.reason = reason;
    this.body = body;
  }
}

export function kubeRequest<T = unknown>(creds: RestCredentials, method: string, path: string, opts: RestOptions = {}): Promise<T> {
  const url = new URL(path, creds.server);
  for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: creds.caPem,
        cert: creds.certPem,
        key: creds.keyPem,
        agent: false,
        timeout: opts.timeoutMs ?? 30_000,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code >= 300) return reject(new KubeRequestError(method, url.pathname, code, text));
          try {
            resolve((text ? JSON.parse(text) : undefined) as T);
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}
