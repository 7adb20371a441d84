// What the operator's credentials for a peer cluster (the kubeconfig a Site names) must allow
// there: the one list that the Site reconciler checks with SelfSubjectAccessReviews before it
// calls the Site Ready, and that a chart template can render into the peer's Role/ClusterRole.
// Keep it equal to what src/controller reads and writes on the target (observe.ts, execute.ts).

/**
 * Where a permission is needed on the peer:
 *  - Cluster: a cluster-scoped resource;
 *  - KubeVirtNamespace: the namespace of KubeVirt there (Site spec.kubevirtNamespace);
 *  - TargetNamespace: every namespace VMs may be migrated into (Site spec.allowedNamespaces when
 *    set; otherwise the namespace of each WanMigration, because one in namespace N targets N).
 *    Nothing here is needed cluster-wide: the operator's caches of the peer watch those
 *    namespaces only, so a peer's chart can keep its VMs (and their inline cloud-init data) in
 *    every other namespace unreadable to us.
 */
export type PeerPermissionScope = 'Cluster' | 'KubeVirtNamespace' | 'TargetNamespace';

/** One RBAC rule's worth of rights: API group ('' for core), resource, verbs, and why we need them. */
export interface PeerPermission {
  group: string;
  resource: string;
  verbs: readonly string[];
  scope: PeerPermissionScope;
  /** Only these objects (RBAC resourceNames): asked about by name, as the chart grants them. */
  names?: readonly string[];
  why: string;
}

export const PEER_CLUSTER_PERMISSIONS: readonly PeerPermission[] = [
  { group: '', resource: 'namespaces', verbs: ['get'], scope: 'Cluster', why: 'check that the target namespace exists' },
  { group: 'kubevirt.io', resource: 'kubevirts', verbs: ['list', 'watch'], scope: 'KubeVirtNamespace', why: 'read the KubeVirt CR: feature gates and synchronization address (cached: watch)' },
  { group: '', resource: 'configmaps', verbs: ['get', 'list', 'watch'], scope: 'KubeVirtNamespace', names: ['kubevirt-ca', 'kubevirt-external-ca'], why: 'CA trust: read both bundles (cached: list, watch by name)' },
  { group: '', resource: 'configmaps', verbs: ['patch'], scope: 'KubeVirtNamespace', names: ['kubevirt-external-ca'], why: 'CA trust: add the source CA to kubevirt-external-ca' },
  { group: '', resource: 'configmaps', verbs: ['create'], scope: 'KubeVirtNamespace', why: 'CA trust: create kubevirt-external-ca when it is missing (create cannot be limited by name)' },
  { group: 'kubevirt.io', resource: 'virtualmachines', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create the receiver VM; remove it on rollback; follow it (cached: watch)' },
  { group: 'kubevirt.io', resource: 'virtualmachineinstances', verbs: ['get', 'list', 'watch'], scope: 'TargetNamespace', why: 'follow the receiver VMI (cached: list, watch)' },
  { group: 'kubevirt.io', resource: 'virtualmachineinstancemigrations', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create and cancel the receiving VMIM; follow it (cached: list, watch)' },
  { group: 'cdi.kubevirt.io', resource: 'datavolumes', verbs: ['get', 'list', 'watch', 'create', 'delete'], scope: 'TargetNamespace', why: 'create the blank disks of the receiver; remove them on rollback; see them appear (cached: watch)' },
  { group: '', resource: 'persistentvolumeclaims', verbs: ['get'], scope: 'TargetNamespace', why: 'refuse a disk name an existing claim already has (CDI could bind it to the receiver\'s blank disk)' },
  { group: '', resource: 'secrets', verbs: ['get', 'list', 'create', 'delete'], scope: 'TargetNamespace', why: 'copy the Secrets the VM uses; remove the copies on rollback' },
  { group: '', resource: 'configmaps', verbs: ['get', 'list', 'create', 'delete'], scope: 'TargetNamespace', why: 'copy the ConfigMaps the VM uses; remove the copies on rollback' },
];

/** One access check: a verb on a resource (one object of it, with `name`), in a namespace ('' for cluster scope). */
export interface PeerAccessCheck {
  group: string;
  resource: string;
  verb: string;
  namespace: string;
  name?: string;
  scope: PeerPermissionScope;
}

function expand(p: PeerPermission, namespace: string): PeerAccessCheck[] {
  const names: readonly (string | undefined)[] = p.names ?? [undefined];
  return names.flatMap((name) => p.verbs.map((verb) => ({ group: p.group, resource: p.resource, verb, namespace, ...(name ? { name } : {}), scope: p.scope })));
}

/**
 * The access checks that make a Site usable: the cluster and KubeVirt-namespace rights, and the
 * TargetNamespace rights in each allowed namespace. A Site that does not list its namespaces
 * accepts each WanMigration's own, which only the migration knows: those are checked per
 * migration (targetNamespaceAccessChecks), not across all namespaces.
 */
export function peerAccessChecks(kubevirtNamespace: string, allowedNamespaces: readonly string[] | undefined): PeerAccessCheck[] {
  const targets = [...new Set(allowedNamespaces ?? [])];
  const out: PeerAccessCheck[] = [];
  for (const p of PEER_CLUSTER_PERMISSIONS) {
    const namespaces = p.scope === 'Cluster' ? [''] : p.scope === 'KubeVirtNamespace' ? [kubevirtNamespace] : targets;
    for (const namespace of namespaces) out.push(...expand(p, namespace));
  }
  return out;
}

/** The TargetNamespace rights in one namespace: what a migration into it needs there. */
export function targetNamespaceAccessChecks(namespace: string): PeerAccessCheck[] {
  return PEER_CLUSTER_PERMISSIONS.filter((p) => p.scope === 'TargetNamespace').flatMap((p) => expand(p, namespace));
}

/** "datavolumes.cdi.kubevirt.io", "namespaces", "configmaps/kubevirt-external-ca": a resource (one object of it, with a name). */
export function describeResource(c: Pick<PeerAccessCheck, 'resource' | 'group' | 'name'>): string {
  return `${c.resource}${c.group ? `.${c.group}` : ''}${c.name ? `/${c.name}` : ''}`;
}

/** "create datavolumes.cdi.kubevirt.io", "get namespaces", "patch configmaps/kubevirt-external-ca": a verb on a resource, without where. */
export function describeVerbOn(c: Pick<PeerAccessCheck, 'verb' | 'resource' | 'group' | 'name'>): string {
  return `${c.verb} ${describeResource(c)}`;
}

/** "create datavolumes.cdi.kubevirt.io in namespace vms", "get namespaces", "list secrets in all namespaces". */
export function describeAccessCheck(c: PeerAccessCheck): string {
  const what = describeVerbOn(c);
  if (c.namespace) return `${what} in namespace ${c.namespace}`;
  return c.scope === 'Cluster' ? what : `${what} in all namespaces`;
}
