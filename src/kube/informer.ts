// A list+watch informer with a local cache, in the manner of client-go's reflector + store:
// - list (paged), then watch from the list's resourceVersion; every event advances the RV;
// - when a watch ends (server timeout, client-node-style 30 s drops, connection loss) it is
//   resumed from the last RV; a 410 Gone (RV compacted away) triggers a fresh relist;
// - any other error restarts the loop after an exponential backoff with jitter;
// - a relist diffs against the cache, so handlers see the adds/updates/deletes they missed;
// - an optional periodic resync calls onUpdate(obj, obj) for every cached object (level-based
//   controllers then re-reconcile everything, healing any missed event);
// - an optional transform strips each object before it is cached (client-go's TransformFunc), so
//   a cache of every VM in a big cluster holds only the fields its readers use;
// - optional indexes (client-go's Indexers) answer "which cached objects have this value".
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

/** Reduces an object to what the cache's readers need. Must keep metadata.name/namespace/resourceVersion. */
export type TransformFunc = (obj: KubeObject) => KubeObject;

/** Values under which an object is indexed (e.g. the VM a WanMigration names). */
export type IndexFunc<T> = (obj: T) => string[];

export interface InformerOptions {
  /** For logs, e.g. "wanmigrations.cloudnet.io@local". */
  name?: string;
  /** Applied to every listed or watched object before it is cached and handed to handlers. */
  transform?: TransformFunc;
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
  /** Keys per namespace, so that a namespace's objects are found without a scan of all. */
  private readonly byNamespace = new Map<string, Set<string>>();
  private readonly indexers = new Map<string, { fn: IndexFunc<T>; index: Map<string, Set<string>> }>();
  private readonly transform: TransformFunc | undefined;
  private readonly handlers = new Set<EventHandlers<T>>();
  private readonly resyncPeriodMs: number;
  private readonly pageSize: number;
  private readonly backoff: RestartBackoff;
  private readonly watchTimeout: [number, number];
  private readonly clock: Clock;
  private readonly log: Logger;
  private resourceVersion = '';
  /** The last list or watch ended in an error; cleared by a list, a watch event or a clean watch end. */
  private lastAttemptFailed = false;
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
    this.transform = opts.transform;
  }

  /** Adds an index over the cached objects (existing ones included). Names are unique per informer. */
  addIndexer(name: string, fn: IndexFunc<T>): void {
    if (this.indexers.has(name)) throw new Error(`informer ${this.name}: index ${name} already exists`);
    const entry = { fn, index: new Map<string, Set<string>>() };
    this.indexers.set(name, entry);
    for (const [key, obj] of this.store) this.indexAdd(entry, key, obj);
  }

  /** Cached objects whose index `name` holds `value`. */
  byIndex(name: string, value: string): T[] {
    const entry = this.indexers.get(name);
    if (!entry) throw new Error(`informer ${this.name}: no index ${name}`);
    const keys = entry.index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const k of keys) {
      const o = this.store.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  /**
   * Synced and its last list/watch attempt did not fail. A cache that cannot reach its API server
   * keeps its last view, which readers that need fresh data should not trust.
   */
  healthy(): boolean {
    return this.synced && !this.lastAttemptFailed;
  }

  /** Not synced yet, and the list already failed at least once (e.g. no RBAC, server down). */
  failing(): boolean {
    return !this.synced && this.lastAttemptFailed;
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
    if (namespace === undefined) return [...this.store.values()];
    const out: T[] = [];
    for (const k of this.byNamespace.get(namespace) ?? []) {
      const o = this.store.get(k);
      if (o) out.push(o);
    }
    return out;
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
        this.lastAttemptFailed = false;
        // A watch that the server ends right away over and over must not become a hot loop.
        if (this.clock.now() - started < 1000) await sleep(this.backoff.next(), signal, this.clock);
        else this.backoff.reset();
      } catch (err) {
        if (signal.aborted) break;
        this.lastAttemptFailed = true;
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
      for (const item of page.items) items.push(this.shape(item));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont);
    this.replace(items);
    this.resourceVersion = rv;
    this.lastAttemptFailed = false;
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
        this.remove(key, old);
        this.emit('onDelete', old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      this.put(key, obj, old);
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
    this.lastAttemptFailed = false;
    const rv = e.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (e.type === 'BOOKMARK') return;
    const obj = this.shape(e.object);
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (e.type === 'DELETED') {
      if (old) this.remove(key, old);
      this.emit('onDelete', obj);
      return;
    }
    this.put(key, obj, old);
    if (old) this.emit('onUpdate', old, obj);
    else this.emit('onAdd', obj);
  }

  private shape(obj: T): T {
    return this.transform ? this.transform(obj) as T : obj;
  }

  private put(key: string, obj: T, old: T | undefined): void {
    this.store.set(key, obj);
    const ns = obj.metadata?.namespace ?? '';
    let keys = this.byNamespace.get(ns);
    if (!keys) this.byNamespace.set(ns, (keys = new Set()));
    keys.add(key);
    for (const entry of this.indexers.values()) {
      if (old) this.indexRemove(entry, key, old);
      this.indexAdd(entry, key, obj);
    }
  }

  private remove(key: string, old: T): void {
    this.store.delete(key);
    const ns = old.metadata?.namespace ?? '';
    const keys = this.byNamespace.get(ns);
    keys?.delete(key);
    if (keys?.size === 0) this.byNamespace.delete(ns);
    for (const entry of this.indexers.values()) this.indexRemove(entry, key, old);
  }

  private indexAdd(entry: { fn: IndexFunc<T>; index: Map<string, Set<string>> }, key: string, obj: T): void {
    for (const v of this.indexValues(entry.fn, obj)) {
      let set = entry.index.get(v);
      if (!set) entry.index.set(v, (set = new Set()));
      set.add(key);
    }
  }

  private indexRemove(entry: { fn: IndexFunc<T>; index: Map<string, Set<string>> }, key: string, obj: T): void {
    for (const v of this.indexValues(entry.fn, obj)) {
      const set = entry.index.get(v);
      set?.delete(key);
      if (set?.size === 0) entry.index.delete(v);
    }
  }

  private indexValues(fn: IndexFunc<T>, obj: T): string[] {
    try {
      return fn(obj);
    } catch (err) {
      this.log.error('index function threw', { err: errMessage(err) });
      return [];
    }
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
