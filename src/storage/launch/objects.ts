// Pure builders for what the operator creates to pre-copy a migration's disks:
//   on the target:  per disk a PVC (the future disk of the receiver VM) and a DataVolume that
//                   adopts it (CDI's storage.prePopulated: nothing is imported over it), a Secret
//                   with the target agent's credentials, and a target agent Pod writing the PVC;
//   on the source:  a Secret with the source agent's credentials and per disk a source agent Pod
//                   on the VMI's node, reading the VM's PVC read-only;
//   operator's own: a Secret in its namespace with every party's credentials (the one copy that
//                   survives an operator restart; nothing is reissued while agents run).
// Names derive from the WanMigration UID, so a restarted operator finds what it made. Every object
// carries the migration labels the controller cleans up by (controller/names.ts), and source
// objects are owned by the WanMigration, target agent Pods by their DataVolume.
import { GROUP } from '../../api/meta.ts';
import type { KubeObject } from '../../kube/rest.ts';
import { effectiveSpec, type WanMigration } from '../../api/wanmigration.ts';
import { AGENT_ROLES, CREDENTIAL_FILES, type AgentCredentials, type AgentRole } from '../agent-auth.ts';

/** The controller's migration labels (src/controller/names.ts, target-objects.ts); a unit test keeps them equal. */
export const LABELS = {
  migrationUID: `${GROUP}/migration-uid`,
  migrationName: `${GROUP}/migration-name`,
  migrationNamespace: `${GROUP}/migration-namespace`,
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  disk: `${GROUP}/disk`,
} as const;

/** Where the launcher records its progress on the operator's credentials Secret. */
export const STATE_ANNOTATION = `${GROUP}/precopy-state`;
export type LaunchPhase = 'Copying' | 'Finishing' | 'Finished';

export const DATA_PORT = 9470;
export const HTTP_PORT = 9471;
/** KubeVirt's disk image inside a filesystem-mode PVC. */
export const DISK_IMAGE = 'disk.img';
/** KubeVirt's qemu user: owns disk images, so the agents run as it. */
const QEMU_UID = 107;

export interface Disk {
  /** Claim name (the PVC, and the DataVolume of the same name when it has one). */
  claim: string;
  /** Index in the VM's volume list order (names the agent Pods). */
  index: number;
  /** Source PVC facts. */
  capacity: string;
  volumeMode: 'Filesystem' | 'Block';
  accessModes: string[];
  storageClassName?: string;
}

export interface AgentImage {
  image: string;
  pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

export function shortId(wm: WanMigration): string {
  return (wm.metadata.uid ?? '').replace(/-/g, '').slice(0, 10);
}

export const names = {
  operatorSecret: (wm: WanMigration) => `cloudnet-agents-${shortId(wm)}`,
  agentSecret: (wm: WanMigration, role: 'source' | 'target') => `cloudnet-agent-${shortId(wm)}-${role === 'source' ? 'src' : 'tgt'}`,
  agentPod: (wm: WanMigration, role: 'source' | 'target', d: Pick<Disk, 'index'>) => `cloudnet-agent-${shortId(wm)}-${role === 'source' ? 'src' : 'tgt'}-${d.index}`,
};

export function migrationLabels(wm: WanMigration): Record<string, string> {
  return {
    [LABELS.migrationUID]: wm.metadata.uid ?? '',
    [LABELS.migrationName]: wm.metadata.name ?? '',
    [LABELS.migrationNamespace]: wm.metadata.namespace ?? '',
    [LABELS.managedBy]: 'cloudnet',
  };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Every party's credentials, in the operator's namespace. */
export function operatorSecret(wm: WanMigration, namespace: string, creds: Record<AgentRole, AgentCredentials>): KubeObject {
  const data: Record<string, string> = {};
  for (const role of AGENT_ROLES) for (const [k, file] of Object.entries(CREDENTIAL_FILES)) data[`${role}.${file}`] = b64(creds[role][k as keyof AgentCredentials]);
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name: names.operatorSecret(wm), namespace, labels: migrationLabels(wm), annotations: { [STATE_ANNOTATION]: 'Copying' satisfies LaunchPhase } },
    data,
  };
}

export function credentialsFromSecret(data: Record<string, string> | undefined, role: AgentRole): AgentCredentials | undefined {
  const get = (file: string) => (data?.[`${role}.${file}`] !== undefined ? Buffer.from(data[`${role}.${file}`], 'base64').toString('utf8') : undefined);
  const c = { ca: get(CREDENTIAL_FILES.ca), cert: get(CREDENTIAL_FILES.cert), key: get(CREDENTIAL_FILES.key), token: get(CREDENTIAL_FILES.token) };
  return c.ca && c.cert && c.key && c.token ? { ca: c.ca, cert: c.cert, key: c.key, token: c.token } : undefined;
}

/** One agent's credentials as the Secret its Pod mounts (files ca.crt, tls.crt, tls.key, token). */
export function agentSecret(wm: WanMigration, role: 'source' | 'target', namespace: string, creds: AgentCredentials, owner?: OwnerRef): KubeObject {
  const data: Record<string, string> = {};
  for (const [k, file] of Object.entries(CREDENTIAL_FILES)) data[file] = b64(creds[k as keyof AgentCredentials]);
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: {
      name: names.agentSecret(wm, role), namespace, labels: { ...migrationLabels(wm), [LABELS.component]: `storage-agent-${role}` },
      ...(owner ? { ownerReferences: [owner] } : {}),
    },
    data,
  };
}

export interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export function ownerOf(o: { apiVersion: string; kind: string; metadata?: { name?: string; uid?: string } }): OwnerRef {
  return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata?.name ?? '', uid: o.metadata?.uid ?? '', controller: true, blockOwnerDeletion: false };
}

export function targetStorageClass(wm: WanMigration, sourceClass: string | undefined): string | undefined {
  const st = effectiveSpec(wm).storage;
  if (sourceClass && st.storageClassMap[sourceClass]) return st.storageClassMap[sourceClass];
  return st.defaultStorageClass ?? sourceClass;
}

function claimSpec(wm: WanMigration, d: Disk): Record<string, unknown> {
  const sc = targetStorageClass(wm, d.storageClassName);
  return {
    accessModes: d.accessModes,
    volumeMode: d.volumeMode,
    resources: { requests: { storage: d.capacity } },
    ...(sc ? { storageClassName: sc } : {}),
  };
}

/** The target volume: a PVC of the source's size, mode and (mapped) class, marked as populated for its DataVolume. */
export function targetPVC(wm: WanMigration, namespace: string, d: Disk): KubeObject {
  return {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim',
    metadata: {
      name: d.claim, namespace,
      labels: { ...migrationLabels(wm), [LABELS.disk]: d.claim },
      // CDI: this PVC already holds the DataVolume's content (the pre-copy writes it).
      annotations: { 'cdi.kubevirt.io/storage.populatedFor': d.claim },
    },
    spec: claimSpec(wm, d),
  };
}

/** The DataVolume the receiver VM names: it adopts the pre-copied PVC instead of importing (CDI storage.prePopulated). */
export function targetDataVolume(wm: WanMigration, namespace: string, d: Disk): KubeObject {
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume',
    metadata: {
      name: d.claim, namespace,
      labels: { ...migrationLabels(wm), [LABELS.disk]: d.claim },
      annotations: { 'cdi.kubevirt.io/storage.prePopulated': d.claim },
    },
    spec: { source: { blank: {} }, storage: claimSpec(wm, d) },
  };
}

const volumePath = (d: Pick<Disk, 'volumeMode'>) => (d.volumeMode === 'Block' ? '/dev/cloudnet-disk' : `/volume/${DISK_IMAGE}`);

function podSecurity(): Record<string, unknown> {
  return { runAsNonRoot: true, runAsUser: QEMU_UID, runAsGroup: QEMU_UID, fsGroup: QEMU_UID, seccompProfile: { type: 'RuntimeDefault' } };
}

const containerSecurity = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

function agentContainer(img: AgentImage, args: string[], d: Disk, readOnlyVolume: boolean): Record<string, unknown> {
  const volume = d.volumeMode === 'Block'
    ? { volumeDevices: [{ name: 'disk', devicePath: volumePath(d) }] }
    : { volumeMounts: [{ name: 'disk', mountPath: '/volume', readOnly: readOnlyVolume }] };
  const mounts = [{ name: 'credentials', mountPath: '/credentials', readOnly: true }, { name: 'work', mountPath: '/work' }];
  return {
    name: 'agent',
    image: img.image,
    ...(img.pullPolicy ? { imagePullPolicy: img.pullPolicy } : {}),
    args,
    // Kubernetes expands $(POD_IP) in args: the agents listen on their Pod's address only.
    env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, { name: 'LOG_LEVEL', value: 'info' }, { name: 'TMPDIR', value: '/work' }],
    ports: [{ name: 'data', containerPort: DATA_PORT, protocol: 'TCP' }, { name: 'https', containerPort: HTTP_PORT, protocol: 'TCP' }],
    securityContext: containerSecurity,
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    ...(d.volumeMode === 'Block' ? { volumeDevices: volume.volumeDevices, volumeMounts: mounts } : { volumeMounts: [...(volume.volumeMounts ?? []), ...mounts] }),
  };
}

function podBase(wm: WanMigration, role: 'source' | 'target', namespace: string, d: Disk, owner: OwnerRef): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name: names.agentPod(wm, role, d), namespace,
      labels: { ...migrationLabels(wm), [LABELS.component]: `storage-agent-${role}`, [LABELS.disk]: d.claim },
      ownerReferences: [owner],
    },
  };
}

/**
 * The target agent: writes the target PVC, listens on the Pod IP. Exits 0 once the source is done,
 * after handing what the volume holds to the site's receiver relay (seedRelay, the operator's
 * configuration) for KubeVirt's final disk mirror.
 */
export function targetAgentPod(wm: WanMigration, namespace: string, d: Disk, img: AgentImage, owner: OwnerRef, seedRelay?: string): KubeObject {
  const args = ['agent', 'target', '--volume', volumePath(d), '--listen', `$(POD_IP):${DATA_PORT}`, '--http', `$(POD_IP):${HTTP_PORT}`,
    '--credentials', '/credentials', '--index', '/work/index', ...(seedRelay ? ['--seed-relay', seedRelay] : [])];
  return {
    ...podBase(wm, 'target', namespace, d, owner),
    spec: {
      restartPolicy: 'OnFailure',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: podSecurity(),
      containers: [agentContainer(img, args, d, false)],
      volumes: [
        { name: 'disk', persistentVolumeClaim: { claimName: d.claim } },
        { name: 'credentials', secret: { secretName: names.agentSecret(wm, 'target'), defaultMode: 0o440 } },
        { name: 'work', emptyDir: {} },
      ],
    },
  };
}

export const TARGET_ANNOTATION = `${GROUP}/target-agent`;

/** The source agent: on the VMI's node (a ReadWriteOnce volume is attached there), the VM's PVC read-only. */
export function sourceAgentPod(wm: WanMigration, namespace: string, d: Disk, img: AgentImage, owner: OwnerRef, node: string, targetIP: string): KubeObject {
  const args = ['agent', 'source', '--disk', volumePath(d), '--target', `${targetIP}:${DATA_PORT}`, '--target-http', `https://${targetIP}:${HTTP_PORT}`,
    '--http', `$(POD_IP):${HTTP_PORT}`, '--credentials', '/credentials', '--work-dir', '/work'];
  const base = podBase(wm, 'source', namespace, d, owner);
  return {
    ...base,
    // Which target agent it was started for: a target Pod that came back elsewhere means a new source Pod.
    metadata: { ...base.metadata, annotations: { [TARGET_ANNOTATION]: targetIP } },
    spec: {
      nodeName: node,
      restartPolicy: 'OnFailure',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: podSecurity(),
      containers: [agentContainer(img, args, d, true)],
      volumes: [
        { name: 'disk', persistentVolumeClaim: { claimName: d.claim, readOnly: true } },
        { name: 'credentials', secret: { secretName: names.agentSecret(wm, 'source'), defaultMode: 0o440 } },
        { name: 'work', emptyDir: {} },
      ],
    },
  };
}
