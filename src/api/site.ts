// Site: a peer cluster that VMs can be migrated to. Cluster-scoped, because a Site is shared
// infrastructure (like a StorageClass), not something one namespace owns. The spec and status
// types are generated from the schema in src/api/schema/site.ts, their one source.
import type { ObjectMeta } from './meta.ts';
import type { SiteSpec, SiteStatus } from './generated/site.ts';

export type { SecretKeyRef, SiteGateway, SiteSpec, SiteStatus, SiteWan } from './generated/site.ts';
export {
  DEFAULT_KUBECONFIG_KEY, DEFAULT_KUBEVIRT_NAMESPACE, DEFAULT_PROBE_INTERVAL_SECONDS, siteSpecSchema, siteStatusSchema,
} from './schema/site.ts';

export const SITE_KIND = 'Site';
export const SITE_PLURAL = 'sites';

export const SiteConditionTypes = { LinkReady: 'LinkReady', Ready: 'Ready' } as const;

export interface Site {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: SiteSpec;
  status?: SiteStatus;
}
