// The operator's client of a sender relay's registration API (src/relay/transport/api.ts): HTTPS
// with the relay's CA and a bearer token, or a unix socket. The address comes from the operator's
// own configuration (CLOUDNET_RELAY_API), never from a WanMigration or Site a user wrote.
import http from 'node:http';
import https from 'node:https';
import type { Registration, RegistrationState } from '../../relay/transport/index.ts';

export interface RelayApiOptions {
  /** https://HOST:PORT or unix:///PATH. */
  url: string;
  token: string;
  /** CA that signed the relay API's certificate (https). */
  ca?: Buffer;
  timeoutMs?: number;
}

export class RelayApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export type RegistrationBody = Omit<Registration, 'owner'> & { namespace: string; name: string };

export class RelayApiClient {
  private readonly o: RelayApiOptions;
  private readonly target: { socketPath: string } | { host: string; port: number; tls: true };

  constructor(o: RelayApiOptions) {
    this.o = o;
    const u = new URL(o.url);
    if (u.protocol === 'unix:') this.target = { socketPath: decodeURIComponent(u.pathname) };
    else if (u.protocol === 'https:') this.target = { host: u.hostname, port: Number(u.port || 443), tls: true };
    else throw new Error(`relay API URL ${o.url} must be https:// or unix://`);
    if (o.token.length < 16) throw new Error('the relay API token must be at least 16 characters');
  }

  get url(): string {
    return this.o.url;
  }

  register(migrationID: string, body: RegistrationBody, signal?: AbortSignal): Promise<RegistrationState> {
    return this.call<RegistrationState>('PUT', `/v1/registrations/${encodeURIComponent(migrationID)}`, body, signal);
  }

  /** True when something was registered. */
  async release(migrationID: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.call('DELETE', `/v1/registrations/${encodeURIComponent(migrationID)}`, undefined, signal);
      return true;
    } catch (e) {
      if (e instanceof RelayApiError && e.status === 404) return false;
      throw e;
    }
  }

  async registrations(signal?: AbortSignal): Promise<RegistrationState[]> {
    return (await this.call<{ registrations: RegistrationState[] }>('GET', '/v1/registrations', undefined, signal)).registrations;
  }

  stats(signal?: AbortSignal): Promise<unknown> {
    return this.call('GET', '/v1/stats', undefined, signal);
  }

  private call<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { authorization: `Bearer ${this.o.token}`, accept: 'application/json' };
    if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = String(payload.length); }
    const t = this.target;
    return new Promise<T>((resolve, reject) => {
      const onRes = (res: http.IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try { json = text ? JSON.parse(text) : {}; } catch { json = undefined; }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && json !== undefined) { resolve(json as T); return; }
          const msg = typeof (json as { error?: unknown } | undefined)?.error === 'string' ? (json as { error: string }).error : text.slice(0, 200);
          reject(new RelayApiError(status, `relay API ${method} ${path}: HTTP ${status}${msg ? `: ${msg}` : ''}`));
        });
        res.on('error', reject);
      };
      const common = { method, path, headers, signal, timeout: this.o.timeoutMs ?? 5000 };
      const req = 'socketPath' in t
        ? http.request({ ...common, socketPath: t.socketPath }, onRes)
        : https.request({ ...common, host: t.host, port: t.port, ...(this.o.ca ? { ca: this.o.ca } : {}), minVersion: 'TLSv1.3' }, onRes);
      req.on('timeout', () => req.destroy(new Error(`relay API ${method} ${path}: no answer within ${this.o.timeoutMs ?? 5000} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
