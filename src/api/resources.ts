// How the kinds CloudNet reads and writes are addressed (group, version, plural), and the least
// every Kubernetes object carries. They live here, not in src/kube, so that the provider ports
// (ports.ts) and every layer above src/api name the same kinds without importing the runtime;
// src/kube re-exports ResourceRef and builds its core kinds from CoreResources.
import { GROUP, VERSION, type ObjectMeta } from './meta.ts';

/** A kind the runtime can list/watch through CustomObjectsApi or core APIs. */
export interface ResourceRef {
  group: string; // '' for core
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

/**
 * Any Kubernetes object as a port sees it: its kind and the identifying part of its metadata.
 * Structural on purpose: src/kube's KubeObject (client-node's metadata types) and our own API
 * types (WanMigration, Site) are both assignable to it, so neither side converts.
 */
export interface KubeObjectShape {
  apiVersion?: string;
  kind?: string;
  metadata?: Pick<ObjectMeta, 'name' | 'namespace' | 'uid' | 'resourceVersion' | 'generation' | 'labels' | 'annotations'>;
  spec?: unknown;
  status?: unknown;
}

/** Core kinds every layer uses (src/kube adds the runtime's own: Lease, core/v1 Event). */
export const CoreResources = {
  secret: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  configMap: { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  namespace: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  event: { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
} as const satisfies Record<string, ResourceRef>;

/** Every kind the controllers, the operator's providers and the tools read or write, in either cluster. */
export const Res = {
  wanMigration: { group: GROUP, version: VERSION, plural: 'wanmigrations', kind: 'WanMigration', namespaced: true },
  site: { group: GROUP, version: VERSION, plural: 'sites', kind: 'Site', namespaced: false },
  vm: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines', kind: 'VirtualMachine', namespaced: true },
  vmi: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances', kind: 'VirtualMachineInstance', namespaced: true },
  vmim: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations', kind: 'VirtualMachineInstanceMigration', namespaced: true },
  kubevirt: { group: 'kubevirt.io', version: 'v1', plural: 'kubevirts', kind: 'KubeVirt', namespaced: true },
  dataVolume: { group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datavolumes', kind: 'DataVolume', namespaced: true },
  pvc: { group: '', version: 'v1', plural: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
  secret: CoreResources.secret,
  configMap: CoreResources.configMap,
  namespace: CoreResources.namespace,
  events: CoreResources.event,
} as const satisfies Record<string, ResourceRef>;
