// Resource references for everything the controllers read or write, in either cluster.
import { GROUP, VERSION } from '../api/meta.ts';
import type { ResourceRef } from '../kube/types.ts';
import { Resources } from '../kube/client.ts';

export const Res = {
  wanMigration: { group: GROUP, version: VERSION, plural: 'wanmigrations', kind: 'WanMigration', namespaced: true },
  site: { group: GROUP, version: VERSION, plural: 'sites', kind: 'Site', namespaced: false },
  vm: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines', kind: 'VirtualMachine', namespaced: true },
  vmi: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances', kind: 'VirtualMachineInstance', namespaced: true },
  vmim: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations', kind: 'VirtualMachineInstanceMigration', namespaced: true },
  kubevirt: { group: 'kubevirt.io', version: 'v1', plural: 'kubevirts', kind: 'KubeVirt', namespaced: true },
  dataVolume: { group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datavolumes', kind: 'DataVolume', namespaced: true },
  pvc: { group: '', version: 'v1', plural: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
  // Core kinds the runtime also uses: one definition, in src/kube/client.ts.
  secret: Resources.secret,
  configMap: Resources.configMap,
  namespace: Resources.namespace,
  events: Resources.event,
} as const satisfies Record<string, ResourceRef>;

/** KubeVirt's CA bundle ConfigMaps (both in KubeVirt's namespace, key `ca-bundle`). */
export const KUBEVIRT_CA = 'kubevirt-ca';
export const KUBEVIRT_EXTERNAL_CA = 'kubevirt-external-ca';
export const CA_BUNDLE_KEY = 'ca-bundle';
export const DECENTRALIZED_FEATURE_GATE = 'DecentralizedLiveMigration';
