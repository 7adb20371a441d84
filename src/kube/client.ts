// Typed helpers for the calls reconcilers make on any cluster: get/list/create/update/patch
// (merge, JSON and server-side apply)/delete of arbitrary objects addressed by ResourceRef,
// status-subresource patches, and finalizer add/remove with optimistic concurrency.
import { KubeConfig } from '@kubernetes/client-node';
import { RestClient, ContentType, type RestClientOptions, isNotFound, resourcePath, apiVersionOf, type KubeObject, type KubeList } from './rest.ts';
import type { ResourceRef } from './types.ts';
import { CoreResources } from '../api/resources.ts';

export type Ref = Pick<ResourceRef, 'group' | 'version' | 'plural'> & { kind?: string };

export interface ApplyOptions {
  fieldManager: string;
  /** Take ownership of conflicting fields (what controllers normally want). Default true. */
  force?: boolean;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
  /** Only delete if the object still has this uid (avoids deleting a re-created namesake). */
  uid?: string;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export class KubeClient {
  readonly rest: RestClient;
  /** A name for logs and metrics ("local", or a Site name). */
  readonly clusterName: string;

  constructor(kubeConfig: KubeConfig | RestClient, clusterName = 'local', opts: RestClientOptions = {}) {
    this.rest = kubeConfig instanceof RestClient ? kubeConfig : new RestClient(kubeConfig, opts);
    this.clusterName = clusterName;
  }

  get kubeConfig(): KubeConfig {
    return this.rest.kubeConfig;
  }

  get<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T> {
    return this.rest.request<T>('GET', resourcePath(ref, namespace, name), { signal });
  }

  /** Like get() but resolves undefined on 404. */
  async tryGet<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      return await this.get<T>(ref, namespace, name, signal);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  list<T extends KubeObject = KubeObject>(ref: Ref, namespace?: string, opts: ListOptions = {}, signal?: AbortSignal): Promise<KubeList<T>> {
    return this.rest.request<KubeList<T>>('GET', resourcePath(ref, namespace), { query: { ...opts }, signal });
  }

  create<T extends KubeObject>(ref: Ref, obj: T, opts: { fieldManager?: string; signal?: AbortSignal } = {}): Promise<T> {
    const ns = obj.metadata?.namespace;
    return this.rest.request<T>('POST', resourcePath(ref, ns), {
      body: { apiVersion: apiVersionOf(ref), ...(ref.kind ? { kind: ref.kind } : {}), ...obj },
      query: { fieldManager: opts.fieldManager },
      signal: opts.signal,
    });
  }

  /** PUT; fails with 409 if metadata.resourceVersion is stale. */
  update<T extends KubeObject>(ref: Ref, obj: T, signal?: AbortSignal): Promise<T> {
    const md = requireMeta(obj);
    return this.rest.request<T>('PUT', resourcePath(ref, md.namespace, md.name), { body: obj, signal });
  }

  patchMerge<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, patch: unknown, signal?: AbortSignal): Promise<T> {
    return this.rest.request<T>('PATCH', resourcePath(ref, namespace, name), { body: patch, contentType: ContentType.mergePatch, signal });
  }

  patchJson<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, ops: unknown[], signal?: AbortSignal): Promise<T> {
    return this.rest.request<T>('PATCH', resourcePath(ref, namespace, name), { body: ops, contentType: ContentType.jsonPatch, signal });
  }

  /** Server-side apply of `obj` (which must carry apiVersion/kind/metadata.name). */
  apply<T extends KubeObject>(ref: Ref, obj: T, opts: ApplyOptions, signal?: AbortSignal): Promise<T> {
    const md = requireMeta(obj);
    return this.rest.request<T>('PATCH', resourcePath(ref, md.namespace, md.name), {
      body: obj, contentType: ContentType.apply, query: { fieldManager: opts.fieldManager, force: opts.force ?? true }, signal,
    });
  }

  /** Merge-patches the status subresource: `patch` is the status object (fields to set). */
  patchStatus<T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, status: unknown, signal?: AbortSignal): Promise<T> {
    return this.rest.request<T>('PATCH', resourcePath(ref, namespace, name, 'status'), { body: { status }, contentType: ContentType.mergePatch, signal });
  }

  /** Server-side apply on the status subresource (`obj` carries apiVersion/kind/metadata/status). */
  applyStatus<T extends KubeObject>(ref: Ref, obj: T, opts: ApplyOptions, signal?: AbortSignal): Promise<T> {
    const md = requireMeta(obj);
    return this.rest.request<T>('PATCH', resourcePath(ref, md.namespace, md.name, 'status'), {
      body: obj, contentType: ContentType.apply, query: { fieldManager: opts.fieldManager, force: opts.force ?? true }, signal,
    });
  }

  /** Deletes; resolves false if it was already gone. */
  async delete(ref: Ref, namespace: string | undefined, name: string, opts: DeleteOptions = {}, signal?: AbortSignal): Promise<boolean> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.uid) body.preconditions = { uid: opts.uid };
    try {
      await this.rest.request('DELETE', resourcePath(ref, namespace, name), { body, signal });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * Adds `finalizer` if missing. The patch carries the observed resourceVersion, so a concurrent
   * change makes it fail with 409 (the reconcile is retried) instead of clobbering the list.
   * Returns the updated object, or the input if nothing had to change.
   */
  async ensureFinalizer<T extends KubeObject>(ref: Ref, obj: T, finalizer: string, signal?: AbortSignal): Promise<T> {
    const md = requireMeta(obj);
    const current = md.finalizers ?? [];
    if (current.includes(finalizer)) return obj;
    return this.patchMerge<T>(ref, md.namespace, md.name, {
      metadata: { resourceVersion: md.resourceVersion, finalizers: [...current, finalizer] },
    }, signal);
  }

  /** Removes `finalizer` if present (same concurrency rule as ensureFinalizer). */
  async removeFinalizer<T extends KubeObject>(ref: Ref, obj: T, finalizer: string, signal?: AbortSignal): Promise<T> {
    const md = requireMeta(obj);
    const current = md.finalizers ?? [];
    if (!current.includes(finalizer)) return obj;
    return this.patchMerge<T>(ref, md.namespace, md.name, {
      metadata: { resourceVersion: md.resourceVersion, finalizers: current.filter((f) => f !== finalizer) },
    }, signal);
  }
}

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata?.finalizers?.includes(finalizer) ?? false;
}

function requireMeta(obj: KubeObject) {
  const md = obj.metadata;
  if (!md?.name) throw new Error('object has no metadata.name');
  return { ...md, name: md.name };
}

/** Well-known core/built-in resources the runtime itself uses (the shared ones are defined in src/api). */
export const Resources = {
  ...CoreResources,
  lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  coreEvent: { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
} as const satisfies Record<string, ResourceRef>;
