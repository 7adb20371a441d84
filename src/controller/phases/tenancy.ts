// The tenancy rule of a target namespace (src/api/tenancy.ts) as a preflight check: which target
// namespaces a Site accepts for a WanMigration of a given namespace, with a message that says
// what the Site allows and what to change.
import { targetNamespaceAllowed } from '../../api/tenancy.ts';
import type { Site } from '../../api/site.ts';
import type { Check } from './observed.ts';

export function tenancyCheck(site: Site, migrationNamespace: string, targetNamespace: string): Check {
  const allowed = site.spec.allowedNamespaces;
  if (targetNamespaceAllowed(allowed, migrationNamespace, targetNamespace)) return { ok: true };
  const name = site.metadata.name ?? '?';
  const why = allowed?.length
    ? `its spec.allowedNamespaces lists only ${allowed.join(', ')}`
    : `it has no spec.allowedNamespaces, so a WanMigration may migrate only into its own namespace (${migrationNamespace})`;
  return {
    ok: false,
    reason: 'TargetNamespaceNotAllowed',
    message: `Site ${name} does not accept target namespace ${targetNamespace} for WanMigrations in namespace ${migrationNamespace}: ${why}; a cluster admin may add it to the Site's spec.allowedNamespaces`,
  };
}
