// A list+watch informer with a local cache, in the manner of client-go's reflector + store:
// - list (paged), then watch from the list's resourceVersion; every event advances the RV;
// - when a watch ends (server timeout, client-node-style 30 s drops, connection loss) it is
//   resumed from the last RV; a 410 Gone (RV compacted away) triggers a fresh relist;
// - any other error restarts the loop after an exponential backoff with jitter;
// - a relist diffs against the cache, so handlers see the adds/updates/deletes they missed;
// - an optional periodic resync calls onUpdate(obj, obj) for every cached object (level-based
//   controllers then re-reconcile everything, healing any missed event).
import { RestartBackoff } from './backoff.ts';
import { realClock, sleep, type Clock } from './clock.ts';
import { KubeApiError, isGone, resourcePath, type KubeList, type KubeObject, type WatchEvent, type RestClient } from './rest.ts';
import type { ResourceRef } from './types.ts';
import { logger, type Logger } from '../util/log.ts';

export interface ListWatcher<T extends KubeObject> {
  list(opts: { limit?: number; continue?: string; signal: AbortSignal }): Promise<KubeList<T>>;
  /** Resolves when the server closes the stream; rejects on errors. */
  watch(resourceVersion: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal, timeoutSeconds: number): Promise<void>;
}

export interface ListWatchSelector {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** A ListWatcher over the REST API for any resource. */
export function restListWatcher<T extends KubeObject>(rest: RestClient, ref: Pick<ResourceRef, 'group' | 'version' | 'plural'>, sel: ListWatchSelector = {}): ListWatcher<T> {
  const path = resourcePath(ref, sel.namespace);
  const selectors = { labelSelector: sel.labelSelector, fieldSelector: sel.fieldSelector };
  return {
    list: ({ limit, continue: cont, signal }) =>
      rest.request<KubeList<T>>('GET', path, { query: { ...selectors, limit, continue: cont }, signal }),
    watch: (resourceVersion, onEvent, signal, timeoutSeconds) =>
      rest.watch<T>(path, { ...selectors, resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, onEvent, signal,
        // The server ends the watch at timeoutSeconds; the client deadline is only a backstop for dead connections.
        (timeoutSeconds + 30) * 1000),
  };
}

export interface EventHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  /** For logs, e.g. "wanmigrations.cloudnet.io@local". */
  name?: string;
  /** 0 disables resync. */
  resyncPeriodMs?: number;
  pageSize?: number;
  backoff?: RestartBackoff;
  /**
   * Server-side watch timeout range; each watch picks a random value in it. client-go uses 5–10 min;
   * we stay under undici's default 300 s body timeout so a quiet watch ends cleanly, not as an error.
   */
  watchTimeoutSeconds?: [number, number];
  clock?: Clock;
  log?: Logger;
}

export interface InformerStats {
  lists: number;
  watches: number;
  goneRelists: number;
  errors: number;
  events: number;
}

export function objectKey(obj: KubeObject): string {
  const md = obj.metadata ?? {};
  return md.namespace ? `${md.namespace}/${md.name}` : (md.name ?? '');
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly name: string;
  readonly stats: InformerStats = { lists: 0, watches: 0, goneRelists: 0, errors: 0, events: 0 };
  private readonly lw: ListWatcher<T>;
  private readonly store = new Map<string, T>();
  private readonly handlers = new Set<EventHandlers<T>>();
  private readonly resyncPeriodMs: number;
  private readonly pageSize: number;
  private readonly backoff: RestartBackoff;
  private readonly watchTimeout: [number, number];
  private readonly clock: Clock;
  private readonly log: Logger;
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private abort: AbortController | undefined;
  private running: Promise<void> | undefined;
  private resyncTimer: unknown;

  constructor(lw: ListWatcher<T>, opts: InformerOptions = {}) {
    this.lw = lw;
    this.name = opts.name ?? 'informer';
    this.resyncPeriodMs = opts.resyncPeriodMs ?? 0;
    this.pageSize = opts.pageSize ?? 500;
    this.backoff = opts.backoff ?? new RestartBackoff(200, 30_000);
    this.watchTimeout = opts.watchTimeoutSeconds ?? [240, 290];
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? logger('informer', { informer: this.name });
  }

  /** Registers handlers; objects already cached are replayed as adds. Returns an unregister function. */
  addEventHandler(h: EventHandlers<T>): () => void {
    this.handlers.add(h);
    for (const obj of this.store.values()) this.call(h, 'onAdd', obj);
    return () => this.handlers.delete(h);
  }

  start(): void {
    if (this.running) return;
    this.abort = new AbortController();
    this.running = this.run(this.abort.signal);
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    if (this.resyncTimer !== undefined) this.clock.clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    await this.running;
    this.running = undefined;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true once the first list has landed in the cache, false if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    const all = [...this.store.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  get lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.listAndReplace(signal);
          needList = false;
        }
        if (signal.aborted) break;
        const started = this.clock.now();
        await this.watchOnce(signal);
        // A watch that the server ends right away over and over must not become a hot loop.
        if (this.clock.now() - started < 1000) await sleep(this.backoff.next(), signal, this.clock);
        else this.backoff.reset();
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          // Our RV was compacted away: only a relist can restore a consistent view.
          this.stats.goneRelists++;
          this.log.info('watch expired (410), relisting', { resourceVersion: this.resourceVersion });
          needList = true;
          continue;
        }
        this.stats.errors++;
        const delayMs = Math.round(this.backoff.next());
        this.log.warn('list/watch failed, retrying', { err: errMessage(err), delayMs, relist: needList });
        await sleep(delayMs, signal, this.clock);
      }
    }
  }

  private async listAndReplace(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.lw.list({ limit: this.pageSize, continue: cont, signal });
      for (const item of page.items) items.push(item);
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont);
    this.replace(items);
    this.resourceVersion = rv;
    this.backoff.reset();
    if (!this.synced) {
      this.synced = true;
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const w of waiters) w();
      this.scheduleResync();
    }
  }

  private replace(items: T[]): void {
    const fresh = new Map<string, T>();
    for (const item of items) fresh.set(objectKey(item), item);
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.store.delete(key);
        this.emit('onDelete', old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      this.store.set(key, obj);
      if (!old) this.emit('onAdd', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('onUpdate', old, obj);
    }
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    this.stats.watches++;
    const [lo, hi] = this.watchTimeout;
    const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
    await this.lw.watch(this.resourceVersion, (e) => this.onWatchEvent(e), signal, timeoutSeconds);
  }

  private onWatchEvent(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; reason?: string; message?: string };
      throw new KubeApiError(status.code ?? 500, status.reason ?? '', status.message ?? 'watch error');
    }
    this.stats.events++;
    const rv = e.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (e.type === 'BOOKMARK') return;
    const key = objectKey(e.object);
    const old = this.store.get(key);
    if (e.type === 'DELETED') {
      this.store.delete(key);
      this.emit('onDelete', e.object);
      return;
    }
    this.store.set(key, e.object);
    if (old) this.emit('onUpdate', old, e.object);
    else this.emit('onAdd', e.object);
  }

  private scheduleResync(): void {
    if (this.resyncPeriodMs <= 0 || this.abort?.signal.aborted) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      for (const obj of this.store.values()) this.emit('onUpdate', obj, obj);
      this.scheduleResync();
    }, this.resyncPeriodMs);
  }

  private emit(kind: 'onAdd' | 'onDelete', obj: T): void;
  private emit(kind: 'onUpdate', oldObj: T, newObj: T): void;
  private emit(kind: keyof EventHandlers<T>, a: T, b?: T): void {
    for (const h of this.handlers) this.call(h, kind, a, b);
  }

  private call(h: EventHandlers<T>, kind: keyof EventHandlers<T>, a: T, b?: T): void {
    try {
      if (kind === 'onUpdate') h.onUpdate?.(a, b ?? a);
      else h[kind]?.(a);
    } catch (err) {
      this.log.error('event handler threw', { err: errMessage(err), handler: kind });
    }
  }
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
