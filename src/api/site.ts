// Site: a peer cluster that VMs can be migrated to. Cluster-scoped, because a Site is shared
// infrastructure (like a StorageClass), not something one namespace owns.
import { conditionsSchema, type Condition, type JSONSchemaProps, type ObjectMeta } from './meta.ts';

export const SITE_KIND = 'Site';
export const SITE_PLURAL = 'sites';

export const SiteConditionTypes = { LinkReady: 'LinkReady', Ready: 'Ready' } as const;

export interface SecretKeyRef {
  namespace: string;
  name: string;
  /** Key in the Secret's data holding the kubeconfig. Default `kubeconfig`. */
  key?: string;
}

export interface SiteGateway {
  /** host:port of the site's WAN gateway (WireGuard endpoint). */
  endpoint: string;
  publicKey?: string;
  /** Tunnel address of the gateway, CIDR notation. */
  tunnelAddress?: string;
}

export interface SiteWan {
  /** Provisioned WAN bandwidth to this site, Mbit/s (planning input, not measured). */
  bandwidthMbps?: number;
  /** Expected round-trip time to this site, ms (planning input, not measured). */
  rttMs?: number;
  /** How often the Site controller probes the site. Default 30. */
  probeIntervalSeconds?: number;
}

export interface SiteSpec {
  kubeconfigSecretRef: SecretKeyRef;
  gateway?: SiteGateway;
  wan?: SiteWan;
  /** CIDRs routed to this site over the link (pod / migration networks). */
  networks?: string[];
  /** Namespace of KubeVirt on that site (KubeVirt CR, kubevirt-ca). Default `kubevirt`. */
  kubevirtNamespace?: string;
}

export interface SiteStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** Last measured round-trip time, ms (what was measured is stated in the LinkReady message). */
  rttMs?: number;
  bandwidthBps?: number;
  lossRatio?: number;
  lastProbeTime?: string;
}

export interface Site {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: SiteSpec;
  status?: SiteStatus;
}

export const DEFAULT_KUBECONFIG_KEY = 'kubeconfig';
export const DEFAULT_KUBEVIRT_NAMESPACE = 'kubevirt';
export const DEFAULT_PROBE_INTERVAL_SECONDS = 30;

const dns1123 = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const siteSpecSchema: JSONSchemaProps = {
  type: 'object',
  required: ['kubeconfigSecretRef'],
  properties: {
    kubeconfigSecretRef: {
      type: 'object',
      description: 'Secret in the operator cluster holding a kubeconfig for this site.',
      required: ['namespace', 'name'],
      properties: {
        namespace: { type: 'string', minLength: 1, maxLength: 63, pattern: dns1123 },
        name: { type: 'string', minLength: 1, maxLength: 253 },
        key: { type: 'string', minLength: 1, default: DEFAULT_KUBECONFIG_KEY },
      },
    },
    gateway: {
      type: 'object',
      required: ['endpoint'],
      properties: {
        endpoint: { type: 'string', minLength: 1, description: 'host:port of the WAN gateway.' },
        publicKey: { type: 'string', description: 'WireGuard public key (base64).', pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$' },
        tunnelAddress: { type: 'string' },
      },
    },
    wan: {
      type: 'object',
      properties: {
        bandwidthMbps: { type: 'integer', minimum: 1 },
        rttMs: { type: 'integer', minimum: 0 },
        probeIntervalSeconds: { type: 'integer', minimum: 1, maximum: 3600, default: DEFAULT_PROBE_INTERVAL_SECONDS },
      },
    },
    networks: { type: 'array', items: { type: 'string' }, maxItems: 64, 'x-kubernetes-list-type': 'set' },
    kubevirtNamespace: { type: 'string', pattern: dns1123, default: DEFAULT_KUBEVIRT_NAMESPACE },
  },
};

export const siteStatusSchema: JSONSchemaProps = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer' },
    conditions: conditionsSchema,
    rttMs: { type: 'number' },
    bandwidthBps: { type: 'number' },
    lossRatio: { type: 'number' },
    lastProbeTime: { type: 'string', format: 'date-time' },
  },
};
