// The in-cluster forms of the gateway's stores: its keys in the Secret `cloudnet-gateway-key`,
// its published state in the ConfigMap `cloudnet-gateway-<peer site>` of its own namespace, and
// the peer's state read from the peer cluster (through the kubeconfig the local Site names).
//
// Naming convention: in cluster X the Site for peer Y is named Y, and X's gateway publishes
// `cloudnet-gateway-Y`; Y's gateway, knowing its own site name Y, reads exactly that ConfigMap
// from X. So each side reads what the other wrote about the link between them, nothing else.
import { Resources, type KubeClient } from '../kube/client.ts';
import { isNotFound, type KubeObject } from '../kube/rest.ts';
import type { Site } from '../api/site.ts';
import { OBJECT_NAME_MAX, boundedName, labelValue } from '../api/names.ts';
import type { LinkEvent, LinkEventSink } from './events.ts';
import type { GatewayExchange, PublishedGatewayState } from './exchange.ts';
import { decodeKeys, encodeKeys, KEY_SECRET_NAME, type KeyStore, type StoredKeys } from './keystore.ts';
import type { GatewayPeerConfig } from './gateway.ts';

export const FIELD_MANAGER = 'cloudnet-gateway';
export const STATE_KEY = 'state.json';
export const DEFAULT_GATEWAY_NAMESPACE = 'cloudnet-system';

/** Site names may have 253 characters: the ConfigMap name is shortened and hashed to stay valid (both sides derive the same). */
export function gatewayStateName(peerSite: string): string {
  return boundedName(`cloudnet-gateway-${peerSite}`, OBJECT_NAME_MAX);
}

interface SecretObj extends KubeObject { data?: Record<string, string>; type?: string }
interface ConfigMapObj extends KubeObject { data?: Record<string, string> }

export class SecretKeyStore implements KeyStore {
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #name: string;
  constructor(client: KubeClient, namespace: string, name = KEY_SECRET_NAME) {
    this.#client = client;
    this.#namespace = namespace;
    this.#name = name;
  }

  async load(): Promise<StoredKeys | undefined> {
    const s = await this.#client.tryGet<SecretObj>(Resources.secret, this.#namespace, this.#name);
    if (!s?.data) return undefined;
    const decoded = Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    return decodeKeys(decoded);
  }

  async save(keys: StoredKeys): Promise<void> {
    const data = Object.fromEntries(Object.entries(encodeKeys(keys)).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    // A PUT of the whole Secret (not apply): a finished rotation must drop the next-key field.
    const existing = await this.#client.tryGet<SecretObj>(Resources.secret, this.#namespace, this.#name);
    const body: SecretObj = {
      apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
      metadata: { name: this.#name, namespace: this.#namespace, labels: { 'app.kubernetes.io/part-of': 'cloudnet', 'app.kubernetes.io/component': 'gateway' },
        ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
      data,
    };
    if (existing) await this.#client.update(Resources.secret, body);
    else await this.#client.create(Resources.secret, body, { fieldManager: FIELD_MANAGER });
  }
}

export interface ConfigMapExchangeOptions {
  local: KubeClient;
  namespace: string;
  localSite: string;
  peerSite: string;
  /** Client for the peer cluster (resolved per call: the kubeconfig Secret may change). */
  peerClient: () => Promise<KubeClient>;
  peerNamespace?: string;
}

export class ConfigMapExchange implements GatewayExchange {
  readonly #o: ConfigMapExchangeOptions;
  constructor(o: ConfigMapExchangeOptions) { this.#o = o; }

  async publish(state: PublishedGatewayState): Promise<void> {
    const cm: ConfigMapObj = {
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: { name: gatewayStateName(this.#o.peerSite), namespace: this.#o.namespace,
        labels: { 'app.kubernetes.io/part-of': 'cloudnet', 'app.kubernetes.io/component': 'gateway', 'cloudnet.io/peer-site': labelValue(this.#o.peerSite) } },
      data: { [STATE_KEY]: JSON.stringify(state) },
    };
    await this.#o.local.apply(Resources.configMap, cm, { fieldManager: FIELD_MANAGER });
  }

  async readPeer(): Promise<PublishedGatewayState | undefined> {
    const client = await this.#o.peerClient();
    return readGatewayState(client, this.#o.peerNamespace ?? this.#o.namespace, this.#o.localSite);
  }
}

/** The state a gateway published about its link to `peerSite` (undefined if none yet). */
export async function readGatewayState(client: KubeClient, namespace: string, peerSite: string, signal?: AbortSignal): Promise<PublishedGatewayState | undefined> {
  let cm: ConfigMapObj | undefined;
  try {
    cm = await client.tryGet<ConfigMapObj>(Resources.configMap, namespace, gatewayStateName(peerSite), signal);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  const text = cm?.data?.[STATE_KEY];
  if (!text) return undefined;
  try { return JSON.parse(text) as PublishedGatewayState; } catch { return undefined; }
}

/** The peer half of the gateway config, from the local Site object describing the peer. */
export function peerConfigFromSite(site: Site): GatewayPeerConfig {
  const gw = site.spec.gateway;
  if (!gw?.endpoint) throw new Error(`Site ${site.metadata.name} has no spec.gateway.endpoint`);
  if (!gw.tunnelAddress) throw new Error(`Site ${site.metadata.name} has no spec.gateway.tunnelAddress`);
  return {
    site: site.metadata.name ?? '',
    endpoint: gw.endpoint,
    tunnelAddress: gw.tunnelAddress,
    networks: site.spec.networks ?? [],
    ...(gw.publicKey ? { publicKey: gw.publicKey } : {}),
  };
}

/**
 * Link events as core/v1 Events about the Site. Site is cluster-scoped, and the API server only
 * accepts Events for cluster-scoped objects in the `default` namespace (where kubectl describe
 * looks for them).
 */
export class KubeEventSink implements LinkEventSink {
  readonly #client: KubeClient;
  readonly #namespace = 'default';
  readonly #site: () => Site | undefined;
  readonly #host: string;
  constructor(client: KubeClient, site: () => Site | undefined, host: string) {
    this.#client = client;
    this.#site = site;
    this.#host = host;
  }

  async emit(e: LinkEvent): Promise<void> {
    const site = this.#site();
    if (!site?.metadata.name) return;
    const name = `${site.metadata.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    await this.#client.create(Resources.coreEvent, {
      apiVersion: 'v1', kind: 'Event',
      metadata: { name, namespace: this.#namespace },
      involvedObject: { apiVersion: site.apiVersion ?? 'cloudnet.io/v1alpha1', kind: 'Site', name: site.metadata.name, uid: site.metadata.uid },
      type: e.type, reason: e.reason, message: e.message.slice(0, 1024),
      source: { component: 'cloudnet-gateway', host: this.#host },
      firstTimestamp: e.time, lastTimestamp: e.time, count: 1, reportingComponent: 'cloudnet.io/gateway', reportingInstance: this.#host,
    } as KubeObject);
  }
}
