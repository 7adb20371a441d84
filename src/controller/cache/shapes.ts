// What the WanMigration controller keeps of each cached kind (the informers' transforms). Caches
// of every VM, VMI and DataVolume in two clusters must stay small however many there are, so
// each shape keeps only the fields observe.ts reads; managedFields, last-applied annotations,
// inline cloud-init data and most of status are dropped. Whatever needs a whole object (the
// receiver VM copies the source VM's spec) reads it from the API when it acts.
import type { KubeObject } from '../../kube/rest.ts';
import type { CacheShape } from '../../kube/manager.ts';
import { GROUP } from '../../api/meta.ts';
import { CA_BUNDLE_KEY, KUBEVIRT_CA, KUBEVIRT_EXTERNAL_CA } from '../resources.ts';
import { MANAGED_BY_LABEL } from '../names.ts';

type Obj = Record<string, unknown>;
const rec = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? v as Obj : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Ours (cloudnet.io/…) and app.kubernetes.io/managed-by: the only labels the controller selects or compares on. */
function keptLabels(labels: unknown): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec(labels))) {
    if ((k.startsWith(`${GROUP}/`) || k === MANAGED_BY_LABEL) && typeof v === 'string') out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Ours (cloudnet.io/…, e.g. the full name of the WanMigration that made the object). */
function keptAnnotations(annotations: unknown): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec(annotations))) if (k.startsWith(`${GROUP}/`) && typeof v === 'string') out[k] = v;
  return Object.keys(out).length ? out : undefined;
}

/** Identity, versioning and lifecycle metadata, plus our labels and annotations. */
function meta(o: KubeObject): KubeObject['metadata'] {
  const m = o.metadata ?? {};
  const out: Obj = {};
  for (const k of ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'] as const) {
    if (m[k] !== undefined) out[k] = m[k];
  }
  const labels = keptLabels(m.labels);
  if (labels) out.labels = labels;
  const annotations = keptAnnotations(m.annotations);
  if (annotations) out.annotations = annotations;
  return out as KubeObject['metadata'];
}

function pick(o: Obj, keys: string[]): Obj {
  const out: Obj = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** A volume reduced to the names it refers to (volumeRefs in target-objects.ts reads these). */
function volumeRef(v: unknown): Obj {
  const vol = rec(v);
  const out: Obj = { name: vol.name };
  if (vol.dataVolume) out.dataVolume = pick(rec(vol.dataVolume), ['name']);
  if (vol.persistentVolumeClaim) out.persistentVolumeClaim = pick(rec(vol.persistentVolumeClaim), ['claimName']);
  if (vol.secret) out.secret = pick(rec(vol.secret), ['secretName']);
  if (vol.configMap) out.configMap = pick(rec(vol.configMap), ['name']);
  for (const ci of ['cloudInitNoCloud', 'cloudInitConfigDrive'] as const) {
    if (vol[ci]) out[ci] = pick(rec(vol[ci]), ['secretRef', 'networkDataSecretRef']);
  }
  return out;
}

function domainMemory(dom: Obj): Obj {
  const res = rec(dom.resources);
  const out: Obj = {};
  if (dom.memory) out.memory = pick(rec(dom.memory), ['guest']);
  if (dom.resources) out.resources = { requests: pick(rec(res.requests), ['memory']), limits: pick(rec(res.limits), ['memory']) };
  return out;
}

/** VirtualMachine: run strategy, the names its volumes refer to, guest memory, printable status. */
export function vmShape(o: KubeObject): KubeObject {
  const spec = rec(o.spec);
  const tplSpec = rec(rec(spec.template).spec);
  return {
    metadata: meta(o),
    spec: {
      ...pick(spec, ['runStrategy', 'running']),
      // The guest's memory size (memory.guest, else the memory request or limit): the derived
      // deadlines (sizing.ts) are computed from it at the start.
      template: { spec: { volumes: arr(tplSpec.volumes).map(volumeRef), ...(tplSpec.domain ? { domain: domainMemory(rec(tplSpec.domain)) } : {}) } },
      ...(spec.dataVolumeTemplates ? { dataVolumeTemplates: arr(spec.dataVolumeTemplates).map((t) => ({ metadata: pick(rec(rec(t).metadata), ['name']) })) } : {}),
    },
    status: pick(rec(o.status), ['printableStatus']),
  };
}

/** VirtualMachineInstance: phase, the LiveMigratable condition, and the receiver's migration proxy
 *  (address, node ports, migration) that the relay registration reads. */
export function vmiShape(o: KubeObject): KubeObject {
  const st = rec(o.status);
  const proxy = pick(rec(st.migrationState), ['targetNodeAddress', 'targetDirectMigrationNodePorts', 'migrationUid']);
  return {
    metadata: meta(o),
    status: {
      ...pick(st, ['phase']),
      conditions: arr(st.conditions).filter((c) => rec(c).type === 'LiveMigratable'),
      ...(Object.keys(proxy).length ? { migrationState: proxy } : {}),
    },
  };
}

/** VirtualMachineInstanceMigration: phase, the blocked condition, failure reason, sync addresses. */
export function vmimShape(o: KubeObject): KubeObject {
  const st = rec(o.status);
  const ms = rec(st.migrationState);
  return {
    metadata: meta(o),
    spec: pick(rec(o.spec), ['vmiName']),
    status: {
      ...pick(st, ['phase', 'synchronizationAddresses']),
      conditions: arr(st.conditions).filter((c) => rec(c).type === 'decentralizedMigrationBlocked'),
      ...(ms.failureReason ? { migrationState: { failureReason: ms.failureReason } } : {}),
    },
  };
}

/** DataVolume: only that it exists, and whose it is (labels). */
export function dataVolumeShape(o: KubeObject): KubeObject {
  return { metadata: meta(o) };
}

/** KubeVirt CR: the feature gates, migration TLS, the version and the synchronization address. */
export function kubevirtShape(o: KubeObject): KubeObject {
  const conf = rec(rec(o.spec).configuration);
  const dev = rec(conf.developerConfiguration);
  const migrations = pick(rec(conf.migrations), ['disableTLS']);
  return {
    metadata: meta(o),
    spec: { configuration: { developerConfiguration: pick(dev, ['featureGates', 'disabledFeatureGates']), ...(Object.keys(migrations).length ? { migrations } : {}) } },
    status: pick(rec(o.status), ['observedKubeVirtVersion', 'targetKubeVirtVersion', 'synchronizationAddresses']),
  };
}

/** ConfigMaps in KubeVirt's namespace: the CA bundles of kubevirt-ca and kubevirt-external-ca, nothing of the others. */
export function caConfigMapShape(o: KubeObject): KubeObject {
  const name = o.metadata?.name;
  if (name !== KUBEVIRT_CA && name !== KUBEVIRT_EXTERNAL_CA) return { metadata: meta(o) };
  const data = rec(o.data);
  return { metadata: meta(o), ...(o.data ? { data: data[CA_BUNDLE_KEY] !== undefined ? { [CA_BUNDLE_KEY]: data[CA_BUNDLE_KEY] } : {} } : {}) };
}

export const Shapes = {
  vm: { id: 'wanmigration/vm', transform: vmShape },
  vmi: { id: 'wanmigration/vmi', transform: vmiShape },
  vmim: { id: 'wanmigration/vmim', transform: vmimShape },
  dataVolume: { id: 'wanmigration/dv', transform: dataVolumeShape },
  kubevirt: { id: 'wanmigration/kubevirt', transform: kubevirtShape },
  caConfigMap: { id: 'wanmigration/ca', transform: caConfigMapShape },
} as const satisfies Record<string, CacheShape>;
