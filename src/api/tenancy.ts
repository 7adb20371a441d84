// The tenancy rules of CloudNet, as data and pure functions (the CRD descriptions quote the same
// text, so the documentation and the behaviour have one source):
//  - namespaces are tenant boundaries: a WanMigration in namespace N migrates VM N/<vm>, and the
//    target Site decides which target namespaces it accepts (Site spec.allowedNamespaces);
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
 * Whether a Site with `allowedNamespaces` accepts `targetNamespace` for a WanMigration that lives in
 * `migrationNamespace` (see ALLOWED_NAMESPACES_RULE).
 */
export function targetNamespaceAllowed(allowedNamespaces: readonly string[] | undefined, migrationNamespace: string, targetNamespace: string): boolean {
  if (!allowedNamespaces?.length) return targetNamespace === migrationNamespace;
  return allowedNamespaces.includes(targetNamespace);
}
