// Site spec and status: the one source of the Site CRD schema and of the Site* TypeScript types
// (src/api/generated/site.ts). Defaults live here because the schema is where the API server
// applies them; the controllers read the same constants for objects that predate a default.
import { conditionsField } from './condition.ts';
import { DNS1123_LABEL, type ApiSchema } from './api-schema.ts';
import { ALLOWED_NAMESPACES_BY_SOURCE_RULE, ALLOWED_NAMESPACES_RULE } from '../tenancy.ts';

export const DEFAULT_KUBECONFIG_KEY = 'kubeconfig';
export const DEFAULT_KUBEVIRT_NAMESPACE = 'kubevirt';
export const DEFAULT_PROBE_INTERVAL_SECONDS = 30;

export const siteSpecSchema: ApiSchema = {
  tsName: 'SiteSpec',
  type: 'object',
  description: 'How to reach the peer cluster: its API (kubeconfig), its WAN gateway and the networks routed to it.',
  required: ['kubeconfigSecretRef'],
  properties: {
    kubeconfigSecretRef: {
      tsName: 'SecretKeyRef',
      type: 'object',
      description: "Secret in the operator cluster holding a kubeconfig for this site. It must be in the operator's own namespace (the release namespace): a Site naming a Secret elsewhere is not used (Ready=False, reason KubeconfigSecretNamespaceNotAllowed).",
      required: ['namespace', 'name'],
      properties: {
        namespace: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL, description: 'Namespace of the Secret.' },
        name: { type: 'string', minLength: 1, maxLength: 253, description: 'Name of the Secret.' },
        key: { type: 'string', minLength: 1, default: DEFAULT_KUBECONFIG_KEY, description: "Key in the Secret's data holding the kubeconfig." },
      },
    },
    gateway: {
      tsName: 'SiteGateway',
      type: 'object',
      description: "The site's WAN gateway: the WireGuard peer that the link to this site connects to.",
      required: ['endpoint'],
      properties: {
        endpoint: { type: 'string', minLength: 1, description: 'host:port of the WAN gateway.' },
        publicKey: { type: 'string', description: 'WireGuard public key (base64).', pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$' },
        tunnelAddress: { type: 'string', description: "The gateway's address inside the tunnel, CIDR notation (required for the link to be set up)." },
      },
    },
    wan: {
      tsName: 'SiteWan',
      type: 'object',
      description: 'The WAN path to this site: planning inputs and how often the site is probed.',
      properties: {
        bandwidthMbps: { type: 'integer', minimum: 1, description: 'Provisioned WAN bandwidth to this site, Mbit/s (planning input, not measured).' },
        probeIntervalSeconds: {
          type: 'integer', minimum: 1, maximum: 3600, default: DEFAULT_PROBE_INTERVAL_SECONDS,
          description: "How often the Site controller probes the site's API server (and the link), seconds.",
        },
      },
    },
    networks: {
      type: 'array', items: { type: 'string' }, maxItems: 64, 'x-kubernetes-list-type': 'set',
      description: 'CIDRs routed to this site over the link (pod / migration networks).',
    },
    kubevirtNamespace: {
      type: 'string', pattern: DNS1123_LABEL, default: DEFAULT_KUBEVIRT_NAMESPACE,
      description: 'Namespace of KubeVirt on that site (its KubeVirt CR and the kubevirt-ca ConfigMap).',
    },
    allowedNamespaces: {
      type: 'array', maxItems: 64, 'x-kubernetes-list-type': 'set',
      items: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL },
      description: ALLOWED_NAMESPACES_RULE,
    },
    allowedNamespacesBySource: {
      type: 'array', maxItems: 64, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['sourceNamespace'],
      items: {
        tsName: 'SourceNamespaceTargets',
        type: 'object',
        required: ['sourceNamespace', 'targetNamespaces'],
        properties: {
          sourceNamespace: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL, description: 'Namespace of WanMigrations in this (the sending) cluster.' },
          targetNamespaces: {
            type: 'array', minItems: 1, maxItems: 64, 'x-kubernetes-list-type': 'set',
            items: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL },
            description: 'The target namespaces those WanMigrations may use (each must also be accepted by spec.allowedNamespaces).',
          },
        },
      },
      description: ALLOWED_NAMESPACES_BY_SOURCE_RULE,
    },
  },
};

export const siteStatusSchema: ApiSchema = {
  tsName: 'SiteStatus',
  type: 'object',
  description: "Observed state of the site: reachability (conditions) and the link's last measurements.",
  properties: {
    observedGeneration: { type: 'integer', description: 'metadata.generation of the spec this status describes.' },
    conditions: conditionsField('LinkReady (the link to the site, or only its API when no link provider runs) and Ready (the API answers, the credentials hold every right the operator needs there, the link is up, and the Site is not being deleted).'),
    rttMs: { type: 'number', description: 'Last measured round-trip time, ms (what was measured is stated in the LinkReady message).' },
    bandwidthBps: { type: 'number', description: 'Estimated throughput through the tunnel, bytes/s (median of recent packet-train probes; set only by a link provider).' },
    lossRatio: { type: 'number', description: 'Share of recent tunnel probes left unanswered, 0 to 1 (set only by a link provider).' },
    lastProbeTime: { type: 'string', format: 'date-time', description: "When the site's API server last answered a probe." },
  },
};
