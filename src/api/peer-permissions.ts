// What the operator's credentials for a peer cluster (the kubeconfig a Site names) must allow
// there: the one list that the Site reconciler checks with SelfSubjectAccessReviews before it
// calls the Site Ready, and that a chart template can render into the peer's Role/ClusterRole.
// Keep it equal to what src/controller reads and writes on the target (observe.ts, execute.ts).

/**
 * Where a permission is needed on the peer:
 *  - Cluster: a cluster-scoped resource;
 *  - KubeVirtNamespace: the namespace of KubeVirt there (Site spec.kubevirtNamespace);
 *  - TargetNamespace: every namespace VMs may be migrated into (Site spec.allowedNamespaces when
 *    set; otherwise any namespace, because a WanMigration in namespace N targets N).
 */
export type PeerPermissionScope = 'Cluster' | 'KubeVirtNamespace' | 'TargetNamespace';

/** One RBAC rule's worth of rights: API group ('' for core), resource, verbs, and why we need them. */
export interface PeerPermission {
  group: string;
  resource: string;
  verbs: readonly string[];
  scope: PeerPermissionScope;
  why: string;
}

export const PEER_CLUSTER_PERMISSIONS: readonly PeerPermission[] = [
  { group: '', resource: 'namespaces', verbs: ['get'], scope: 'Cluster', why: 'check that the target namespace exists' },
  { group: 'kubevirt.io', resource: 'kubevirts', verbs: ['list', 'watch'], scope: 'KubeVirtNamespace', why: 'read the KubeVirt CR: feature gates and synchronization address (cached: watch)' },
  { group: '', resource: 'configmaps', verbs: ['get', 'create', 'patch'], scope: 'KubeVirtNamespace', why: 'CA trust: read kubevirt-ca, add the source CA to kubevirt-external-ca' },
  { group: 'kubevirt.io', resource: 'virtualmachines', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create the receiver VM; remove it on rollback; follow it (cached: watch)' },
  { group: 'kubevirt.io', resource: 'virtualmachineinstances', verbs: ['get', 'list', 'watch'], scope: 'TargetNamespace', why: 'follow the receiver VMI (cached: list, watch)' },
  { group: 'kubevirt.io', resource: 'virtualmachineinstancemigrations', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create and cancel the receiving VMIM; follow it (cached: list, watch)' },
  { group: 'cdi.kubevirt.io', resource: 'datavolumes', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create the blank disks of the receiver; remove them on rollback; see them appear (cached: watch)' },
  { group: '', resource: 'persistentvolumeclaims', verbs: ['get'], scope: 'TargetNamespace', why: 'refuse a disk name an existing claim already has (CDI could bind it to the receiver\'s blank disk)' },
  { group: '', resource: 'secrets', verbs: ['get', 'list', 'create', 'delete'], scope: 'TargetNamespace', why: 'copy the Secrets the VM uses; remove the copies on rollback' },
  { group: '', resource: 'configmaps', verbs: ['get', 'list', 'create', 'delete'], scope: 'TargetNamespace', why: 'copy the ConfigMaps the VM uses; remove the copies on rollback' },
];

/** One access check: a verb on a resource, in a namespace ('' for cluster scope or all namespaces). */
export interface PeerAccessCheck {
  group: string;
  resource: string;
  verb: string;
  namespace: string;
  scope: PeerPermissionScope;
}

/**
 * The access checks that make a Site usable. TargetNamespace rights are checked in each allowed
 * namespace, or across all namespaces ('') when the Site does not restrict them.
 */
export function peerAccessChecks(kubevirtNamespace: string, allowedNamespaces: readonly string[] | undefined): PeerAccessCheck[] {
  const targets = allowedNamespaces?.length ? [...new Set(allowedNamespaces)] : [''];
  const out: PeerAccessCheck[] = [];
  for (const p of PEER_CLUSTER_PERMISSIONS) {
    const namespaces = p.scope === 'Cluster' ? [''] : p.scope === 'KubeVirtNamespace' ? [kubevirtNamespace] : targets;
    for (const namespace of namespaces) for (const verb of p.verbs) out.push({ group: p.group, resource: p.resource, verb, namespace, scope: p.scope });
  }
  return out;
}

/** "create datavolumes.cdi.kubevirt.io", "get namespaces": a verb on a resource, without where. */
export function describeVerbOn(c: Pick<PeerAccessCheck, 'verb' | 'resource' | 'group'>): string {
  return `${c.verb} ${c.resource}${c.group ? `.${c.group}` : ''}`;
}

/** "create datavolumes.cdi.kubevirt.io in namespace vms", "get namespaces", "list secrets in all namespaces". */
export function describeAccessCheck(c: PeerAccessCheck): string {
  const what = describeVerbOn(c);
  if (c.namespace) return `${what} in namespace ${c.namespace}`;
  return c.scope === 'Cluster' ? what : `${what} in all namespaces`;
}
