// `cloudnet gateway`: runs the site gateway agent. Configuration comes from flags (or a JSON file
// with the same keys via --config), key material from --key-file, and the exchange with the peer
// from --state-file / --peer-state-file. SIGUSR1 starts a key rotation; SIGTERM stops cleanly
// (the interface and wireguard-go are removed).
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { logger } from '../util/log.ts';
import { FileEventSink, LogEventSink, MultiEventSink, type LinkEventSink } from './events.ts';
import { FileExchange } from './exchange.ts';
import { FileKeyStore } from './keystore.ts';
import { GATEWAY_DEFAULTS, GATEWAY_OPEN_PATHS, GatewayAgent, type GatewayConfig, type GatewayPeerConfig } from './gateway.ts';
import type { Logger } from '../util/log.ts';
import type { GatewayExchange } from './exchange.ts';
import type { KeyStore } from './keystore.ts';
import { DEFAULT_PROBE_PORT } from './probe.ts';

const USAGE = `usage: cloudnet gateway --site NAME --interface IF --tunnel-address CIDR
    --peer-site NAME --peer-endpoint HOST:PORT --peer-tunnel-address CIDR [--peer-network CIDR]...
    --key-file PATH --state-file PATH [--peer-state-file PATH] [--events-file PATH]
    [--listen-port N] [--endpoint HOST:PORT] [--network CIDR]... [--peer-public-key KEY]
    [--probe-port N] [--probe-interval-ms N] [--probe-timeout-ms N] [--miss-threshold N]
    [--bandwidth-interval-ms N] [--keepalive N] [--rotate-interval-ms N]
    [--metrics-port N | --metrics-bind-address HOST:PORT] [--metrics-secure=false] [--metrics-cert-dir DIR]
    [--allow-default-route] [--node-address IP] [--config FILE.json]
  --node-address: this node's address on the site network, published for the route agents of
    the other nodes (in a cluster: the pod's status.hostIP)
  --metrics-port N: serve GET /metrics, /status and /healthz on port N: with --kube (secure, the
    default) HTTPS on all addresses, every request but /healthz authenticated (TokenReview) and
    authorized (SubjectAccessReview: get on the path, e.g. the chart's <release>-metrics-reader)
    by the API server; without --kube, or with --metrics-secure=false, plain HTTP on 127.0.0.1.
    --metrics-bind-address HOST:PORT (":PORT": all addresses, "0": off) chooses the address.
  --metrics-cert-dir DIR: tls.crt and tls.key for HTTPS (re-read on change; default self-signed)

In a cluster (--kube; kubeconfig from KUBECONFIG or the pod's service account):
  cloudnet gateway --kube --site NAME --peer-site SITE --interface IF --tunnel-address CIDR
    [--namespace NS] [--peer-namespace NS] [--peer-kubeconfig FILE] [--network CIDR]... [other flags as above]
  The peer's endpoint, tunnel address, networks and optional pinned key come from the local Site
  SITE; keys live in the Secret cloudnet-gateway-key, the published state in the ConfigMap
  cloudnet-gateway-SITE. The peer's state (its ConfigMap cloudnet-gateway-<this site>) is read
  with the kubeconfig in FILE (a mounted Secret, re-read when it changes; it needs only get on
  that ConfigMap in the peer cluster), or without --peer-kubeconfig through the kubeconfig
  Secret the Site names (which needs list/watch on Secrets there: the operator's credential).`;

type Flags = Record<string, string | string[] | boolean | undefined>;

const options = {
  config: { type: 'string' }, site: { type: 'string' }, interface: { type: 'string' },
  'listen-port': { type: 'string' }, 'tunnel-address': { type: 'string' }, endpoint: { type: 'string' },
  network: { type: 'string', multiple: true }, 'peer-site': { type: 'string' }, 'peer-endpoint': { type: 'string' },
  'peer-tunnel-address': { type: 'string' }, 'peer-network': { type: 'string', multiple: true },
  'peer-public-key': { type: 'string' }, 'key-file': { type: 'string' }, 'state-file': { type: 'string' },
  'peer-state-file': { type: 'string' }, 'events-file': { type: 'string' }, 'probe-port': { type: 'string' },
  'probe-interval-ms': { type: 'string' }, 'probe-timeout-ms': { type: 'string' }, 'miss-threshold': { type: 'string' },
  'bandwidth-interval-ms': { type: 'string' }, keepalive: { type: 'string' }, 'rotate-interval-ms': { type: 'string' },
  'metrics-port': { type: 'string' }, 'allow-default-route': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  kube: { type: 'boolean' }, namespace: { type: 'string' }, 'peer-namespace': { type: 'string' }, 'node-address': { type: 'string' },
  'peer-kubeconfig': { type: 'string' }, 'metrics-bind-address': { type: 'string' }, 'metrics-secure': { type: 'string' },
  'metrics-cert-dir': { type: 'string' },
} as const;

function str(f: Flags, k: string): string | undefined {
  const v = f[k];
  return typeof v === 'string' ? v : undefined;
}

function req(f: Flags, k: string): string {
  const v = str(f, k);
  if (!v) throw new Error(`--${k} is required\n${USAGE}`);
  return v;
}

function num(f: Flags, k: string, dflt: number): number {
  const v = str(f, k);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a non-negative number`);
  return n;
}

function list(f: Flags, k: string): string[] {
  const v = f[k];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** --metrics-secure[=true|false] (Go's flag syntax, as the operator's); only --kube can be secure. */
export function metricsSecure(f: Flags): boolean {
  const v = f['metrics-secure'];
  if (v === undefined || v === true || v === 'true' || v === '') return f.kube === true;
  if (v === false || v === 'false') return false;
  throw new Error(`--metrics-secure ${String(v)}: true or false`);
}

/**
 * Where the HTTP endpoints listen: --metrics-bind-address as given, else --metrics-port on all
 * addresses when they are authenticated (--kube, secure) and on 127.0.0.1 when not; "" = off.
 */
export function metricsBindAddress(f: Flags): string {
  const bind = str(f, 'metrics-bind-address');
  if (bind !== undefined) return bind === '0' ? '' : bind;
  const port = num(f, 'metrics-port', 0);
  if (!port) return '';
  return metricsSecure(f) ? `:${port}` : `127.0.0.1:${port}`;
}

export function configFromFlags(f: Flags, peerFromApi?: GatewayPeerConfig): GatewayConfig {
  const d = GATEWAY_DEFAULTS;
  const peerKey = str(f, 'peer-public-key');
  const endpoint = str(f, 'endpoint');
  const nodeAddress = str(f, 'node-address');
  const peer: GatewayPeerConfig = peerFromApi ?? {
    site: req(f, 'peer-site'),
    endpoint: req(f, 'peer-endpoint'),
    tunnelAddress: req(f, 'peer-tunnel-address'),
    networks: list(f, 'peer-network'),
    ...(peerKey ? { publicKey: peerKey } : {}),
  };
  return {
    site: req(f, 'site'),
    interfaceName: req(f, 'interface'),
    listenPort: num(f, 'listen-port', d.listenPort),
    tunnelAddress: req(f, 'tunnel-address'),
    ...(endpoint ? { endpoint } : {}),
    ...(nodeAddress ? { nodeAddress } : {}),
    networks: list(f, 'network'),
    peer,
    allowDefaultRoute: f['allow-default-route'] === true,
    persistentKeepaliveSec: num(f, 'keepalive', d.persistentKeepaliveSec),
    probePort: num(f, 'probe-port', DEFAULT_PROBE_PORT),
    probeIntervalMs: num(f, 'probe-interval-ms', d.probeIntervalMs),
    probeTimeoutMs: num(f, 'probe-timeout-ms', d.probeTimeoutMs),
    missThreshold: num(f, 'miss-threshold', d.missThreshold),
    bandwidthProbe: { ...d.bandwidthProbe, intervalMs: num(f, 'bandwidth-interval-ms', d.bandwidthProbe.intervalMs) },
    rotateIntervalMs: num(f, 'rotate-interval-ms', d.rotateIntervalMs),
    metricsBindAddress: metricsBindAddress(f) || d.metricsBindAddress,
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  let flags: Flags = values;
  if (values.help) { console.log(USAGE); return 0; }
  if (values.config) flags = { ...(JSON.parse(await readFile(values.config, 'utf8')) as Flags), ...values };
  const log = logger('gateway', { site: str(flags, 'site') ?? '', peer: str(flags, 'peer-site') ?? '' });
  const sinks: LinkEventSink[] = [new LogEventSink(log)];
  const eventsFile = str(flags, 'events-file');
  if (eventsFile) sinks.push(new FileEventSink(eventsFile));
  let agent: GatewayAgent;
  if (flags.kube === true) {
    const k = await kubeDeps(flags, log);
    sinks.push(k.events);
    agent = new GatewayAgent(configFromFlags(flags, k.peer), {
      keys: k.keys, exchange: k.exchange, events: new MultiEventSink(sinks, log), log, peerSource: k.peerSource, serve: k.serve,
    });
  } else {
    if (str(flags, 'peer-kubeconfig')) throw new Error('--peer-kubeconfig needs --kube');
    if (flags['metrics-secure'] !== undefined && metricsSecure(flags)) throw new Error('--metrics-secure needs --kube (the API server authenticates the requests)');
    agent = new GatewayAgent(configFromFlags(flags), {
      keys: new FileKeyStore(req(flags, 'key-file')),
      exchange: new FileExchange(req(flags, 'state-file'), str(flags, 'peer-state-file')),
      events: new MultiEventSink(sinks, log),
      log,
    });
  }
  const cfg = agent.cfg;
  onRotationRequest = () => { log.info('key rotation requested by Site annotation', { annotation: ROTATE_ANNOTATION }); agent.requestRotation(); };
  await agent.start();
  log.info('gateway running', { ifname: cfg.interfaceName, publicKey: agent.publicKey() });
  await new Promise<void>((resolve) => {
    process.on('SIGUSR1', () => { log.info('key rotation requested'); agent.requestRotation(); });
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await agent.stop();
  return 0;
}

export const ROTATE_ANNOTATION = 'cloudnet.io/rotate-gateway-key';

let onRotationRequest: () => void = () => undefined;

interface KubeDeps {
  keys: KeyStore;
  exchange: GatewayExchange;
  events: LinkEventSink;
  peer: GatewayPeerConfig;
  peerSource: () => Promise<GatewayPeerConfig>;
  serve: NonNullable<import('./gateway.ts').GatewayDeps['serve']>;
}

/** Wires the gateway to the cluster: Secret, ConfigMaps, the peer Site and the peer cluster. */
async function kubeDeps(flags: Flags, log: Logger): Promise<KubeDeps> {
  // Loaded lazily so that the file mode never pulls in the Kubernetes client.
  const [{ KubeConfig }, { KubeClient }, { ClusterClients }, { KubeconfigFileClient }, { kubeconfigSecretOf }, { Res }, kube, { hostname }, { serveSecure }] = await Promise.all([
    import('@kubernetes/client-node'), import('../kube/client.ts'), import('../kube/clusters.ts'), import('../kube/kubeconfig-file.ts'),
    import('../api/site-kubeconfig.ts'), import('../api/resources.ts'), import('./kube.ts'), import('node:os'), import('../kube/secure-serving.ts'),
  ]);
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const local = new KubeClient(kc);
  const namespace = str(flags, 'namespace') ?? kube.DEFAULT_GATEWAY_NAMESPACE;
  const localSite = req(flags, 'site');
  const peerSite = req(flags, 'peer-site');
  // The peer cluster: the gateway's own narrow credential from a file (the chart mounts
  // gateway.peers[].kubeconfigSecret), or else the Site's kubeconfig Secret (the operator's).
  const peerKubeconfig = str(flags, 'peer-kubeconfig');
  const peerFile = peerKubeconfig ? new KubeconfigFileClient({ path: peerKubeconfig, clusterName: peerSite, log }) : undefined;
  const clusters = peerFile ? undefined : new ClusterClients({ local, log });
  if (!peerFile) log.warn('no --peer-kubeconfig: reading the peer through the Site\'s kubeconfig Secret, which needs list/watch on Secrets in its namespace');
  type SiteT = import('../api/site.ts').Site;
  let site: SiteT | undefined;
  const readSite = async (): Promise<SiteT> => {
    site = await local.get<import('../kube/rest.ts').KubeObject>(Res.site, undefined, peerSite) as unknown as SiteT;
    return site;
  };
  // Rotation on request: changing the Site annotation cloudnet.io/rotate-gateway-key (any new
  // value, e.g. a timestamp) makes this gateway rotate its key once.
  let rotationToken: string | undefined;
  let tokenSeen = false;
  const peerSource = async (): Promise<GatewayPeerConfig> => {
    const s = await readSite();
    const token = s.metadata.annotations?.[ROTATE_ANNOTATION];
    if (tokenSeen && token !== undefined && token !== rotationToken) onRotationRequest();
    rotationToken = token;
    tokenSeen = true;
    const p = kube.peerConfigFromSite(s);
    const pinned = str(flags, 'peer-public-key');
    return pinned ? { ...p, publicKey: pinned } : p;
  };
  let peer: GatewayPeerConfig | undefined;
  for (let attempt = 0; !peer; attempt++) {
    try { peer = await peerSource(); } catch (e) {
      if (attempt % 10 === 0) log.warn('waiting for the peer Site', { site: peerSite, error: String(e) });
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  const peerNamespace = str(flags, 'peer-namespace');
  return {
    keys: new kube.SecretKeyStore(local, namespace),
    exchange: new kube.ConfigMapExchange({
      local, namespace, localSite, peerSite, ...(peerNamespace ? { peerNamespace } : {}),
      peerClient: async () => {
        if (peerFile) return peerFile.client();
        const s = site ?? await readSite();
        return clusters!.forSecret(kubeconfigSecretOf(s), s.metadata.name);
      },
    }),
    events: new kube.KubeEventSink(local, () => site, hostname()),
    peer,
    peerSource,
    // /metrics and /status ask this cluster's API server who is calling (TokenReview) and whether
    // they may get the path (SubjectAccessReview); /healthz reveals nothing and stays open.
    serve: (bind, handler) => {
      const certDir = str(flags, 'metrics-cert-dir');
      const nodeAddress = str(flags, 'node-address');
      return serveSecure({ bindAddress: bind, secure: metricsSecure(flags), ...(certDir ? { certDir } : {}) }, handler, local.rest, {
        commonName: 'cloudnet-gateway', ...(nodeAddress && isIP(nodeAddress) ? { ipAddresses: [nodeAddress] } : {}),
        openPaths: GATEWAY_OPEN_PATHS, component: 'gateway',
      });
    },
  };
}
