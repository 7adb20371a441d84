// Pure builders for what a decentralized KubeVirt migration needs on the target (user guide
// "Decentralized live migration"): a receiver copy of the VM, blank DataVolumes for its disks,
// copies of the Secrets/ConfigMaps it mounts, and the two VMIMs sharing one migrationID.
import type {
  V1VirtualMachine, V1VirtualMachineInstanceMigration, V1Volume,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeObject } from '../kube/rest.ts';
import type { ResolvedSpec, WanMigration } from '../api/wanmigration.ts';
import { GROUP } from '../api/meta.ts';
import { labelValue } from '../api/names.ts';
import { copiedMetadata } from '../api/tenancy.ts';
import { MANAGED_BY, MANAGED_BY_LABEL, MIGRATION_LABEL, RESTORE_RUN_STRATEGY, migrationNames } from './names.ts';

/** The WanMigration's name as a label value: shortened and hashed beyond 63 characters (api/names.ts). */
export const MIGRATION_NAME_LABEL = `${GROUP}/migration-name`;
export const MIGRATION_NAMESPACE_LABEL = `${GROUP}/migration-namespace`;
/** The WanMigration's full name (a name may be longer than a label value may be). */
export const MIGRATION_NAME_ANNOTATION = `${GROUP}/migration-name`;

/** Labels on every object we create, so we find (and only ever delete) our own. */
export function ownedLabels(wm: WanMigration): Record<string, string> {
  return {
    [MIGRATION_LABEL]: wm.metadata.uid ?? '',
    [MIGRATION_NAME_LABEL]: labelValue(wm.metadata.name ?? ''),
    [MIGRATION_NAMESPACE_LABEL]: wm.metadata.namespace ?? '',
    [MANAGED_BY_LABEL]: MANAGED_BY,
  };
}

/** Annotations on every object we create: who created it, by full name. */
export function ownedAnnotations(wm: WanMigration): Record<string, string> {
  return { [MIGRATION_NAME_ANNOTATION]: wm.metadata.name ?? '' };
}

/** Labels and annotations of a copy: the source's, filtered by the tenancy rule (api/tenancy.ts), then ours. */
function copyMetadata(
  md: { labels?: Record<string, string>; annotations?: Record<string, string> } | undefined, wm: WanMigration, extraAnnotations: Record<string, string> = {},
): { labels: Record<string, string>; annotations: Record<string, string> } {
  return {
    labels: { ...copiedMetadata(md?.labels), ...ownedLabels(wm) },
    annotations: { ...copiedMetadata(md?.annotations), ...extraAnnotations, ...ownedAnnotations(wm) },
  };
}

export interface VolumeRefs {
  /** DataVolumes (standalone or from dataVolumeTemplates) and PVCs backing disks, by claim name. */
  disks: { name: string; kind: 'DataVolume' | 'PVC' }[];
  secrets: string[];
  configMaps: string[];
  /** ServiceAccounts mounted as volumes: identities of the namespace, never copied. */
  serviceAccounts: string[];
}

/** The run strategy the VM had, as KubeVirt would restore it (`running: true` means Always). */
export function runStrategyOf(vm: V1VirtualMachine): string {
  if (vm.spec.runStrategy) return vm.spec.runStrategy;
  return vm.spec.running ? 'Always' : 'Halted';
}

export function volumeRefs(vm: V1VirtualMachine): VolumeRefs {
  const vols: V1Volume[] = vm.spec.template.spec?.volumes ?? [];
  const disks: VolumeRefs['disks'] = [];
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  const serviceAccounts = new Set<string>();
  // Access credentials name Secrets too (SSH keys, passwords): copied like the volumes' Secrets,
  // or the receiver would pick up whatever has that name in the target namespace.
  for (const a of vm.spec.template.spec?.accessCredentials ?? []) {
    for (const s of [a.sshPublicKey?.source?.secret?.secretName, a.userPassword?.source?.secret?.secretName]) if (s) secrets.add(s);
  }
  for (const v of vols) {
    if (v.dataVolume?.name) disks.push({ name: v.dataVolume.name, kind: 'DataVolume' });
    if (v.persistentVolumeClaim?.claimName) disks.push({ name: v.persistentVolumeClaim.claimName, kind: 'PVC' });
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    if (v.configMap?.name) configMaps.add(v.configMap.name);
    if (v.sysprep?.secret?.name) secrets.add(v.sysprep.secret.name);
    if (v.sysprep?.configMap?.name) configMaps.add(v.sysprep.configMap.name);
    if (v.serviceAccount) serviceAccounts.add(v.serviceAccount.serviceAccountName ?? 'default');
    for (const ci of [v.cloudInitNoCloud, v.cloudInitConfigDrive]) {
      if (ci?.secretRef?.name) secrets.add(ci.secretRef.name);
      if (ci?.networkDataSecretRef?.name) secrets.add(ci.networkDataSecretRef.name);
    }
  }
  return { disks, secrets: [...secrets].sort(), configMaps: [...configMaps].sort(), serviceAccounts: [...serviceAccounts].sort() };
}

/** The receiver: same spec, runStrategy WaitAsReceiver, original strategy in the restore annotation. */
export function receiverVM(source: V1VirtualMachine, wm: WanMigration, spec: ResolvedSpec): V1VirtualMachine & KubeObject {
  const md = source.metadata ?? {};
  const vmSpec = structuredClone(source.spec);
  delete vmSpec.running;
  // The disks are created explicitly as blank DataVolumes; templates would make CDI import again.
  delete vmSpec.dataVolumeTemplates;
  vmSpec.runStrategy = 'WaitAsReceiver';
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: spec.vmName,
      namespace: spec.targetNamespace,
      ...copyMetadata(md, wm, { [RESTORE_RUN_STRATEGY]: runStrategyOf(source) }),
    },
    spec: vmSpec,
  };
}

export interface SourceDisk {
  name: string;
  storage: string; // quantity
  storageClassName?: string;
  accessModes?: string[];
  volumeMode?: string;
}

export function targetStorageClass(spec: ResolvedSpec, sourceClass: string | undefined): string | undefined {
  if (sourceClass && spec.storage.storageClassMap[sourceClass]) return spec.storage.storageClassMap[sourceClass];
  return spec.storage.defaultStorageClass ?? sourceClass;
}

/** A blank DataVolume the migration fills (user guide: blank source + usePopulator). */
export function blankDataVolume(disk: SourceDisk, wm: WanMigration, spec: ResolvedSpec): KubeObject {
  const sc = targetStorageClass(spec, disk.storageClassName);
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: {
      name: disk.name,
      namespace: spec.targetNamespace,
      labels: ownedLabels(wm),
      annotations: { 'cdi.kubevirt.io/storage.usePopulator': 'true', ...ownedAnnotations(wm) },
    },
    spec: {
      source: { blank: {} },
      storage: {
        resources: { requests: { storage: disk.storage } },
        ...(sc ? { storageClassName: sc } : {}),
        ...(disk.accessModes ? { accessModes: disk.accessModes } : {}),
        ...(disk.volumeMode ? { volumeMode: disk.volumeMode } : {}),
      },
    },
  };
}

/** A copy of a Secret or ConfigMap for the target namespace, without server-set metadata. */
export function copyObject(obj: KubeObject & { data?: unknown; stringData?: unknown; binaryData?: unknown; type?: unknown; immutable?: unknown }, wm: WanMigration, spec: ResolvedSpec): KubeObject {
  const out: KubeObject = {
    apiVersion: obj.apiVersion ?? 'v1',
    kind: obj.kind,
    metadata: {
      name: obj.metadata?.name,
      namespace: spec.targetNamespace,
      ...copyMetadata(obj.metadata, wm),
    },
  };
  for (const k of ['data', 'binaryData', 'type', 'immutable'] as const) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

export function targetVMIM(wm: WanMigration, spec: ResolvedSpec): V1VirtualMachineInstanceMigration & KubeObject {
  const n = migrationNames(wm);
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstanceMigration',
    metadata: { name: n.targetVMIM, namespace: spec.targetNamespace, labels: ownedLabels(wm), annotations: ownedAnnotations(wm) },
    spec: { receive: { migrationID: n.migrationID }, vmiName: spec.vmName },
  };
}

export function sourceVMIM(wm: WanMigration, spec: ResolvedSpec, connectURL: string): V1VirtualMachineInstanceMigration & KubeObject {
  const n = migrationNames(wm);
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstanceMigration',
    metadata: { name: n.sourceVMIM, namespace: wm.metadata.namespace, labels: ownedLabels(wm), annotations: ownedAnnotations(wm) },
    spec: { sendTo: { connectURL, migrationID: n.migrationID }, vmiName: spec.vmName },
  };
}

/**
 * A Secret/ConfigMap on the target that we did not create may stand in for our copy only if it
 * holds exactly what the source's holds (same type, data and binaryData); anything else is a
 * name collision, because the VM would silently boot with different keys or configuration.
 */
export function sameContent(a: KubeObject & { data?: unknown; binaryData?: unknown; type?: unknown }, b: KubeObject & { data?: unknown; binaryData?: unknown; type?: unknown }): boolean {
  const norm = (o: typeof a) => JSON.stringify([o.type ?? null, sorted(o.data), sorted(o.binaryData)]);
  return norm(a) === norm(b);
}

function sorted(v: unknown): unknown {
  if (!v || typeof v !== 'object') return v ?? {};
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}
