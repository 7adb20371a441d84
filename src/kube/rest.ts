// A small, typed REST client for any Kubernetes resource (core, built-in groups and CRDs), on top of
// client-node's KubeConfig for authentication and TLS. Why not the generated clients: the runtime
// needs one code path for arbitrary group/version/plural (informers, status patches, server-side
// apply, watches with our own timeouts), and client-node 2.0.x's Watch aborts streams after 30 s of
// inactivity. Requests reuse one HTTP dispatcher per client instead of one per call.
//
// close() is final and orderly: every request and watch still in flight is aborted and settles
// (rejects with RestClientClosedError, which its caller handles), and only then is the connection
// pool closed. The pool speaks HTTP/1.1: undici's HTTP/2 client can leave a stream whose response
// arrived just as its request was aborted without an 'error' listener, and destroying the session
// then throws ClientDestroyedError from that stream as an uncaught exception (the operator exited
// 1 at shutdown, right after its informers' watches were aborted).
import type { AgentOptions } from 'node:https';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { RequestContext, HttpMethod } from '@kubernetes/client-node';
import { Agent, fetch, type Dispatcher } from 'undici';
import type { ResourceRef } from './types.ts';
import { TokenBucket, type RateLimit } from './ratelimit.ts';

export interface KubeObject extends KubernetesObject {
  [field: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** The body of a failed request (metav1.Status) with the HTTP code. */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: unknown;

  constructor(code: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = 'KubeApiError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

export const isNotFound = (e: unknown) => e instanceof KubeApiError && e.code === 404;
export const isConflict = (e: unknown) => e instanceof KubeApiError && e.code === 409;
export const isAlreadyExists = (e: unknown) => e instanceof KubeApiError && e.code === 409 && e.reason === 'AlreadyExists';
export const isGone = (e: unknown) => e instanceof KubeApiError && e.code === 410;

/** A request on (or cut short by) a RestClient that was closed. */
export class RestClientClosedError extends Error {
  constructor(server: string) {
    super(`kube client for ${server} closed`);
    this.name = 'RestClientClosedError';
  }
}

/** Bound on close() waiting for aborted requests to settle and the pool to close, each. */
const CLOSE_STEP_MS = 2000;

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: WatchEventType;
  object: T;
}

export const ContentType = {
  json: 'application/json',
  mergePatch: 'application/merge-patch+json',
  jsonPatch: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Default 30 s; watches pass their own. */
  timeoutMs?: number;
}

/** `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise. */
export function resourcePath(ref: Pick<ResourceRef, 'group' | 'version' | 'plural'>, namespace?: string, name?: string, subresource?: string): string {
  let p = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${ref.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export function apiVersionOf(ref: Pick<ResourceRef, 'group' | 'version'>): string {
  return ref.group ? `${ref.group}/${ref.version}` : ref.version;
}

/** Hooks for client metrics (client-go's rest_client_* families); the client stays free of prom-client. */
export interface RestClientMetricsSink {
  /** One finished request: HTTP method, status code ('<error>' when no answer came) and duration. */
  request(host: string, method: string, code: string, seconds: number): void;
  /** Time a request waited for the client-side rate limiter. */
  rateLimiterWait(host: string, seconds: number): void;
}

export interface RestClientOptions {
  /** Client-side QPS/burst (client-go's rest.Config QPS and Burst). Default: unlimited. */
  rateLimit?: RateLimit;
  /** Sent as User-Agent, so the API server's logs and audit tell our requests apart. */
  userAgent?: string;
  metrics?: RestClientMetricsSink;
}

export class RestClient {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  private readonly host: string;
  private readonly limiter: TokenBucket | undefined;
  private readonly userAgent: string | undefined;
  private readonly metrics: RestClientMetricsSink | undefined;
  private dispatcher: Dispatcher | undefined;
  /** Aborts every request in flight when the client closes. */
  private readonly closing = new AbortController();
  /** Requests and watches not settled yet (each one's whole life: limiter, headers, body). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed: Promise<void> | undefined;

  constructor(kubeConfig: KubeConfig, opts: RestClientOptions = {}) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
    this.host = hostOf(this.server);
    this.limiter = opts.rateLimit && opts.rateLimit.qps > 0 ? new TokenBucket(opts.rateLimit) : undefined;
    this.userAgent = opts.userAgent;
    this.metrics = opts.metrics;
  }

  request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    return this.track(async () => {
      const res = await this.send(method, path, opts, opts.timeoutMs ?? 30_000);
      const text = await res.text();
      if (res.status >= 400) throw toApiError(res.status, text);
      return (text ? JSON.parse(text) : undefined) as T;
    });
  }

  /**
   * Streams a watch. Resolves when the server ends the stream (timeoutSeconds elapsed), rejects on
   * transport errors or a non-200 answer. ERROR events (e.g. 410 Expired) are passed to `onEvent`.
   */
  watch<T extends KubeObject>(path: string, query: RequestOptions['query'], onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal, timeoutMs: number): Promise<void> {
    return this.track(async () => {
      const res = await this.send('GET', path, { query: { ...query, watch: true }, signal }, timeoutMs);
      if (res.status !== 200) throw toApiError(res.status, await res.text());
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent<T>);
        }
      }
    });
  }

  /** Requests and watches in flight (for tests and shutdown diagnostics). */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Runs one request or watch, known to close() until it settles; refused once the client is closed. */
  private track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing.signal.aborted) return Promise.reject(this.closing.signal.reason as Error);
    const p = fn();
    this.inFlight.add(p);
    const forget = () => { this.inFlight.delete(p); };
    p.then(forget, forget);
    return p;
  }

  private async send(method: string, path: string, opts: RequestOptions, timeoutMs: number) {
    if (this.limiter) {
      const t0 = performance.now();
      await this.limiter.acquire(opts.signal ? AbortSignal.any([opts.signal, this.closing.signal]) : this.closing.signal);
      this.metrics?.rateLimiterWait(this.host, (performance.now() - t0) / 1000);
    }
    const t0 = performance.now();
    try {
      const res = await this.sendNow(method, path, opts, timeoutMs);
      this.metrics?.request(this.host, method, String(res.status), (performance.now() - t0) / 1000);
      return res;
    } catch (err) {
      this.metrics?.request(this.host, method, '<error>', (performance.now() - t0) / 1000);
      throw err;
    }
  }

  private async sendNow(method: string, path: string, opts: RequestOptions, timeoutMs: number) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    // Closed while authenticating (e.g. an exec credential plugin): open no pool that nobody would close.
    if (this.closing.signal.aborted) throw this.closing.signal.reason as Error;
    // Keep one connection pool per client: client-node makes a fresh dispatcher per request.
    this.dispatcher ??= await this.newDispatcher(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), accept: 'application/json' };
    if (this.userAgent) headers['user-agent'] = this.userAgent;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? ContentType.json;
    }
    const signals = [AbortSignal.timeout(timeoutMs), this.closing.signal];
    if (opts.signal) signals.push(opts.signal);
    return fetch(url, { method, headers, body, dispatcher: this.dispatcher, signal: AbortSignal.any(signals) });
  }

  /**
   * Our own HTTP/1.1 pool with the TLS settings client-node derives from the kubeconfig (see the
   * header for why not HTTP/2). Proxied clusters keep client-node's dispatcher (its connectors).
   */
  private async newDispatcher(ctx: RequestContext): Promise<Dispatcher | undefined> {
    const https: AgentOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(https);
    const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = https;
    const o = this.kubeConfig.createDispatcherOptions(this.kubeConfig.getCurrentCluster(), { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername });
    if (o.type === 'agent') return new Agent({ connect: o.connect, allowH2: false });
    if (o.type === 'none') return new Agent({ allowH2: false });
    return ctx.getDispatcher() as Dispatcher | undefined;
  }

  /**
   * Closes the client for good (shutdown, or a replaced kubeconfig): aborts every request and
   * watch in flight, waits for them to settle, then closes the connection pool (destroyed if it
   * does not close in time). Each wait is bounded; later requests fail with RestClientClosedError.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing.abort(new RestClientClosedError(this.server));
    await settlesWithin(Promise.allSettled([...this.inFlight]), CLOSE_STEP_MS);
    const d = this.dispatcher;
    this.dispatcher = undefined;
    if (!d) return;
    if (!(await settlesWithin(d.close(), CLOSE_STEP_MS))) await settlesWithin(d.destroy(), CLOSE_STEP_MS);
  }
}

/** True if `p` settled (either way) within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function hostOf(server: string): string {
  try {
    return new URL(server).host;
  } catch {
    return server;
  }
}

function toApiError(code: number, text: string): KubeApiError {
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    return new KubeApiError(code, s.reason ?? '', s.message ?? `HTTP ${code}`, s.details);
  } catch {
    return new KubeApiError(code, '', `HTTP ${code}: ${text.slice(0, 200)}`);
  }
}
