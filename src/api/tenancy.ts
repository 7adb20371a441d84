// The tenancy rules of CloudNet, as data and pure functions (the CRD descriptions quote the same
// text, so the documentation and the behaviour have one source):
//  - namespaces are tenant boundaries: a WanMigration in namespace N migrates VM N/<vm>, and the
//    target Site decides which target namespaces it accepts (Site spec.allowedNamespaces), and,
//    optionally, which of them each source namespace may use (spec.allowedNamespacesBySource);
//  - labels and annotations are copied to the target objects except the keys that belong to the
//    system (Kubernetes, KubeVirt, CDI, CloudNet itself, Argo CD), so a copy never claims to be
//    managed by something on the target that did not create it.

/** Key prefixes never copied: a key whose prefix (the part before "/") is exactly one of these. */
export const SYSTEM_KEY_PREFIXES = ['kubernetes.io/', 'k8s.io/', 'kubevirt.io/', 'cdi.kubevirt.io/', 'cloudnet.io/', 'argocd.argoproj.io/'] as const;
/** Single keys never copied, besides the prefixes. */
export const NEVER_COPIED_KEYS = ['kubectl.kubernetes.io/last-applied-configuration'] as const;

export const METADATA_COPY_RULE = 'Labels and annotations of the source VirtualMachine and of the Secrets and ConfigMaps it uses are '
  + `copied to the objects created on the target, except keys whose prefix is exactly ${SYSTEM_KEY_PREFIXES.join(', ')} `
  + `(e.g. kubevirt.io/foo is not copied, app.kubernetes.io/name is) and the key ${NEVER_COPIED_KEYS.join(', ')}. `
  + 'The VM template (spec.template) is copied as it is: it is the definition of the VM.';

export const ALLOWED_NAMESPACES_RULE = 'Target-cluster namespaces that WanMigrations to this Site may use as spec.targetNamespace. '
  + 'Unset or empty (the default): only the namespace of the WanMigration itself (a WanMigration in namespace N may migrate only into N on this site). '
  + 'Set: only the namespaces listed, by exact name; the list is authoritative, so the WanMigration\'s own namespace must be listed too if it is to be allowed. '
  + 'A WanMigration whose target namespace is not allowed does not start: Stalled=True with reason TargetNamespaceNotAllowed and a Warning Event, and nothing is created on the target. '
  + 'The check is made before a migration starts; a running migration is not stopped by a later change of this list.';

export const ALLOWED_NAMESPACES_BY_SOURCE_RULE = 'Optional narrowing of spec.allowedNamespaces per source namespace, for Sites shared by several tenants: '
  + 'when set, a WanMigration in namespace N may use as spec.targetNamespace only the targetNamespaces of the entry whose sourceNamespace is N, '
  + 'and only those of them that spec.allowedNamespaces accepts (N itself when that list is unset); a namespace without an entry may not migrate to this Site at all. '
  + 'Unset (the default): every source namespace may use every namespace that spec.allowedNamespaces accepts. '
  + 'Refusals are reported like those of spec.allowedNamespaces (TargetNamespaceNotAllowed), before anything is created.';

/** One entry of Site spec.allowedNamespacesBySource. */
export interface SourceNamespaceTargetsRule {
  sourceNamespace: string;
  targetNamespaces: readonly string[];
}

/** What a Site says about target namespaces: spec.allowedNamespaces and spec.allowedNamespacesBySource. */
export interface TargetNamespacePolicy {
  allowedNamespaces?: readonly string[];
  allowedNamespacesBySource?: readonly SourceNamespaceTargetsRule[];
}

/** True when a label or annotation key of a source object may be copied to the target. */
export function isCopiedMetadataKey(key: string): boolean {
  if ((NEVER_COPIED_KEYS as readonly string[]).includes(key)) return false;
  return !SYSTEM_KEY_PREFIXES.some((p) => key.startsWith(p));
}

/** The copyable subset of a label or annotation map (a new object; undefined reads as empty). */
export function copiedMetadata(m: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(m ?? {}).filter(([k]) => isCopiedMetadataKey(k)));
}

/**
 * Whether a Site accepts `targetNamespace` for a WanMigration that lives in `migrationNamespace`
 * (ALLOWED_NAMESPACES_RULE, then ALLOWED_NAMESPACES_BY_SOURCE_RULE).
 */
export function targetNamespaceAllowed(policy: TargetNamespacePolicy, migrationNamespace: string, targetNamespace: string): boolean {
  if (!acceptedByAllowedNamespaces(policy.allowedNamespaces, migrationNamespace, targetNamespace)) return false;
  const bySource = policy.allowedNamespacesBySource;
  if (!bySource?.length) return true;
  return bySource.some((r) => r.sourceNamespace === migrationNamespace && r.targetNamespaces.includes(targetNamespace));
}

/** ALLOWED_NAMESPACES_RULE alone: the listed namespaces, or, with none listed, the WanMigration's own. */
export function acceptedByAllowedNamespaces(allowedNamespaces: readonly string[] | undefined, migrationNamespace: string, targetNamespace: string): boolean {
  return allowedNamespaces?.length ? allowedNamespaces.includes(targetNamespace) : targetNamespace === migrationNamespace;
}
