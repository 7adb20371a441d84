// The tenancy rule of a target namespace (src/api/tenancy.ts) as a preflight check: which target
// namespaces a Site accepts for a WanMigration of a given namespace, with a message that says
// what the Site allows and what to change.
import { acceptedByAllowedNamespaces, targetNamespaceAllowed } from '../../api/tenancy.ts';
import type { Site } from '../../api/site.ts';
import type { Check } from './observed.ts';

export function tenancyCheck(site: Site, migrationNamespace: string, targetNamespace: string): Check {
  if (targetNamespaceAllowed(site.spec, migrationNamespace, targetNamespace)) return { ok: true };
  const { allowedNamespaces: allowed, allowedNamespacesBySource: bySource } = site.spec;
  const name = site.metadata.name ?? '?';
  const refused = (why: string, fix: string): Check => ({
    ok: false,
    reason: 'TargetNamespaceNotAllowed',
    message: `Site ${name} does not accept target namespace ${targetNamespace} for WanMigrations in namespace ${migrationNamespace}: ${why}; a cluster admin may ${fix}`,
  });
  if (!acceptedByAllowedNamespaces(allowed, migrationNamespace, targetNamespace)) {
    return refused(allowed?.length
      ? `its spec.allowedNamespaces lists only ${allowed.join(', ')}`
      : `it has no spec.allowedNamespaces, so a WanMigration may migrate only into its own namespace (${migrationNamespace})`,
    'add it to the Site\'s spec.allowedNamespaces');
  }
  const entry = bySource?.find((r) => r.sourceNamespace === migrationNamespace);
  return refused(entry
    ? `its spec.allowedNamespacesBySource lets namespace ${migrationNamespace} use only ${entry.targetNamespaces.join(', ')}`
    : `its spec.allowedNamespacesBySource has no entry for namespace ${migrationNamespace}`,
  `add it to that namespace's entry in the Site's spec.allowedNamespacesBySource`);
}
