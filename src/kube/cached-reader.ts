// Reads answered from informer caches, with the API as fallback: what controller-runtime's
// delegating client does for get/list. An object kind is served from the cache only when an
// informer of it covers the namespace asked for and is healthy; otherwise (no such informer, not
// synced within a bound, or its watch failing) the read goes to the API server. A cache may hold
// stripped objects (the informer's transform): callers read only the fields the shape keeps.
import type { KubeClient, Ref } from './client.ts';
import type { Informer } from './informer.ts';
import type { KubeObject } from './rest.ts';
import type { ResourceRef } from './types.ts';

export interface ObjectReader {
  /** The object, or undefined when it does not exist. */
  get<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined>;
  /** Objects in `namespace` (all namespaces when undefined) matching `labelSelector`. */
  list<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, labelSelector?: string, signal?: AbortSignal): Promise<T[]>;
}

/** Reads straight from the API server. */
export function liveReader(client: KubeClient): ObjectReader {
  return {
    get<T extends KubeObject = KubeObject>(ref: Ref, ns: string | undefined, name: string, signal?: AbortSignal) {
      return client.tryGet<T>(ref, ns, name, signal);
    },
    async list<T extends KubeObject = KubeObject>(ref: Ref, ns: string | undefined, labelSelector?: string, signal?: AbortSignal) {
      return (await client.list<T>(ref, ns, labelSelector ? { labelSelector } : {}, signal)).items;
    },
  };
}

/**
 * Reads of what `fromCache` selects answered by `cached`, every other read by `live`: e.g. fresh
 * reads of fast-moving objects before a destructive step, while slow-moving configuration keeps
 * coming from the cache.
 */
export function routedReader(cached: ObjectReader, live: ObjectReader, fromCache: (ref: Ref, namespace: string | undefined) => boolean): ObjectReader {
  return {
    get: (ref, ns, name, signal) => (fromCache(ref, ns) ? cached : live).get(ref, ns, name, signal),
    list: (ref, ns, sel, signal) => (fromCache(ref, ns) ? cached : live).list(ref, ns, sel, signal),
  };
}

type Requirement = { key: string; op: '=' | '!=' | 'exists' | '!exists'; value?: string };

/** Equality-based selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`); undefined for anything else. */
export function parseLabelSelector(sel: string | undefined): Requirement[] | undefined {
  if (!sel?.trim()) return [];
  const out: Requirement[] = [];
  for (const raw of sel.split(',')) {
    const part = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([A-Za-z0-9._/-]+)\s*!=\s*([A-Za-z0-9._-]*)$/.exec(part))) out.push({ key: m[1], op: '!=', value: m[2] });
    else if ((m = /^([A-Za-z0-9._/-]+)\s*==?\s*([A-Za-z0-9._-]*)$/.exec(part))) out.push({ key: m[1], op: '=', value: m[2] });
    else if ((m = /^!\s*([A-Za-z0-9._/-]+)$/.exec(part))) out.push({ key: m[1], op: '!exists' });
    else if ((m = /^([A-Za-z0-9._/-]+)$/.exec(part))) out.push({ key: m[1], op: 'exists' });
    else return undefined;
  }
  return out;
}

export function matchesLabels(labels: Record<string, string> | undefined, reqs: Requirement[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case '=': return has && l[r.key] === r.value;
      case '!=': return !has || l[r.key] !== r.value;
      case 'exists': return has;
      case '!exists': return !has;
    }
  });
}

interface Entry {
  informer: Informer;
  /** undefined: all namespaces (or a cluster-scoped kind). */
  namespace?: string;
  /** Set for an informer of one object (a metadata.name field selector): it answers gets of that name only. */
  name?: string;
}

export interface CachedReaderOptions {
  /** Longest a read waits for a cache that is still doing its first list. Default 5 s. */
  syncWaitMs?: number;
}

const refKey = (ref: Pick<ResourceRef, 'group' | 'plural'>) => `${ref.group}/${ref.plural}`;

export class CachedReader implements ObjectReader {
  readonly client: KubeClient;
  private readonly live: ObjectReader;
  private readonly entries = new Map<string, Entry[]>();
  private readonly syncWaitMs: number;
  /** Reads served from a cache and from the API (for tests and metrics). */
  readonly stats = { cached: 0, live: 0 };

  constructor(client: KubeClient, opts: CachedReaderOptions = {}) {
    this.client = client;
    this.live = liveReader(client);
    this.syncWaitMs = opts.syncWaitMs ?? 5000;
  }

  /** Serves `ref` in `namespace` (all when undefined) from `informer`; with `name`, only gets of that object. */
  register(ref: Pick<ResourceRef, 'group' | 'plural'>, informer: Informer, namespace?: string, name?: string): void {
    const k = refKey(ref);
    const list = this.entries.get(k) ?? [];
    if (!list.some((e) => e.informer === informer)) list.push({ informer, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}) });
    this.entries.set(k, list);
  }

  /** Stops serving reads from `informer` (it is being released): they go to the API, or another informer. */
  unregister(informer: Informer): void {
    for (const [k, list] of this.entries) {
      const kept = list.filter((e) => e.informer !== informer);
      if (kept.length) this.entries.set(k, kept);
      else this.entries.delete(k);
    }
  }

  async get<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined> {
    const inf = await this.usable(ref, namespace, name, signal);
    if (!inf) {
      this.stats.live++;
      return this.live.get<T>(ref, namespace, name, signal);
    }
    this.stats.cached++;
    return inf.getByName(namespace, name) as T | undefined;
  }

  async list<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, labelSelector?: string, signal?: AbortSignal): Promise<T[]> {
    const reqs = parseLabelSelector(labelSelector);
    const inf = reqs ? await this.usable(ref, namespace, undefined, signal) : undefined;
    if (!inf || !reqs) {
      this.stats.live++;
      return this.live.list<T>(ref, namespace, labelSelector, signal);
    }
    this.stats.cached++;
    return inf.list(namespace).filter((o) => matchesLabels(o.metadata?.labels, reqs)) as T[];
  }

  /** A healthy informer covering the read, waiting (bounded) for one that is still starting. */
  private async usable(ref: Pick<ResourceRef, 'group' | 'plural'>, namespace: string | undefined, name: string | undefined, signal?: AbortSignal): Promise<Informer | undefined> {
    const candidates = (this.entries.get(refKey(ref)) ?? []).filter((e) => (e.namespace === undefined || e.namespace === namespace) && (e.name === undefined || e.name === name));
    const healthy = candidates.find((e) => e.informer.healthy());
    if (healthy) return healthy.informer;
    const starting = candidates.find((e) => !e.informer.hasSynced() && !e.informer.failing());
    if (!starting) return undefined;
    const bound = AbortSignal.any([AbortSignal.timeout(this.syncWaitMs), ...(signal ? [signal] : [])]);
    return (await starting.informer.waitForSync(bound)) && starting.informer.healthy() ? starting.informer : undefined;
  }
}
