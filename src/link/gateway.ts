// The gateway agent (`cloudnet gateway`): one per site, in the gateway Deployment (hostNetwork in
// a real cluster). It owns the WireGuard interface towards one peer site, runs the probe responder
// and the probes, and publishes its public key and link status through a GatewayExchange, which
// the peer's gateway and the local Site controller read. See rotation.ts for key rotation and
// status.ts for the LinkReady reasons and the outage-detection bound.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveHttp, type BoundServer, type Handler } from '../kube/secure-serving.ts';
import type { Logger } from '../util/log.ts';
import { addressOf, normalizeCidr, overlaps } from './cidr.ts';
import type { LinkEventSink } from './events.ts';
import type { GatewayExchange, PublishedGatewayState } from './exchange.ts';
import { generateKeyPair, keyFingerprint } from './keys.ts';
import { loadOrCreateKeys, type KeyStore, type StoredKeys } from './keystore.ts';
import { LinkMetrics } from './metrics.ts';
import { ProbeClient, ProbeResponder, ProbeWindow, median, type EchoReply } from './probe.ts';
import { peerEntries, planPeerKeys, shouldSwitch } from './rotation.ts';
import { DEFAULT_EVALUATE, evaluateLink, type LinkStatus } from './status.ts';
import { applyConfig, readDevice, validateConfig, WgDevice, type WgDeviceState, type WgInterfaceConfig } from './wireguard.ts';

export interface GatewayPeerConfig {
  site: string;
  /** host:port of the peer's WireGuard endpoint (Site.spec.gateway.endpoint). */
  endpoint: string;
  /** Peer tunnel address (Site.spec.gateway.tunnelAddress), e.g. "198.18.0.2/31". */
  tunnelAddress: string;
  /** The peer's declared ranges (Site.spec.networks): the only inner addresses it may use. */
  networks: string[];
  /** Pinned peer key (Site.spec.gateway.publicKey); otherwise the peer's published key is used. */
  publicKey?: string;
}

export interface GatewayConfig {
  site: string;
  interfaceName: string;
  listenPort: number;
  /** This gateway's tunnel address with prefix, e.g. "198.18.0.1/31". */
  tunnelAddress: string;
  /** host:port the peer should use for us (published for diagnostics). */
  endpoint?: string;
  /** This node's address on the site network, published for the route agents (--node-address). */
  nodeAddress?: string;
  networks: string[];
  peer: GatewayPeerConfig;
  allowDefaultRoute?: boolean;
  persistentKeepaliveSec: number;
  probePort: number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  missThreshold: number;
  /** Packet-train bandwidth probe: every `intervalMs`, `count` packets of `size` bytes (≤ count×size bytes). */
  bandwidthProbe: { intervalMs: number; count: number; size: number };
  /** Rotate the key this often (0 = only on request). */
  rotateIntervalMs: number;
  /**
   * Serve /metrics, /status and /healthz here (HOST:PORT, ":PORT" for all addresses; "" = off).
   * How (HTTPS with API-server authentication, or plain) is GatewayDeps.serve's business.
   */
  metricsBindAddress: string;
}

export const GATEWAY_DEFAULTS = {
  listenPort: 51820,
  persistentKeepaliveSec: 5,
  probeIntervalMs: 1000,
  probeTimeoutMs: 900,
  missThreshold: 3,
  bandwidthProbe: { intervalMs: 30_000, count: 48, size: 1200 },
  rotateIntervalMs: 0,
  metricsBindAddress: '',
} as const;

const STAGED_POLL_MS = 50;
/** WireGuard's REJECT_AFTER_TIME: a session older than this is dead. */
const REJECT_AFTER_SEC = 180;
/** Addresses, link state and routes are re-checked this often (and whenever the config changes). */
const IP_CHECK_INTERVAL_MS = 10_000;
/** Unchanged state is re-published this often (a heartbeat carrying fresh measurements). */
const PUBLISH_HEARTBEAT_MS = 5000;
/** How long the higher-key side leaves initiating to the other after a session is lost. */
const PASSIVE_WINDOW_MS = 20_000;

export interface GatewayDeps {
  keys: KeyStore;
  exchange: GatewayExchange;
  events: LinkEventSink;
  log: Logger;
  metrics?: LinkMetrics;
  now?: () => Date;
  /** Re-reads the peer config every round (the Site object in a cluster); errors keep the last one. */
  peerSource?: () => Promise<GatewayPeerConfig>;
  /**
   * Serves the gateway's HTTP handler on cfg.metricsBindAddress. Default: plain HTTP without
   * authentication (the file mode has no API server to ask; its CLI binds 127.0.0.1 by default).
   * In a cluster the CLI passes HTTPS with TokenReview + SubjectAccessReview (src/kube/secure-serving.ts).
   */
  serve?: (bind: string, handler: Handler) => Promise<BoundServer | undefined>;
}

/** Answered without authentication: it says only that the process serves HTTP. */
export const GATEWAY_OPEN_PATHS = ['/healthz'] as const;

export class GatewayAgent {
  readonly cfg: GatewayConfig;
  readonly metrics: LinkMetrics;
  readonly #d: GatewayDeps;
  #keys!: StoredKeys;
  #device: WgDevice | undefined;
  #responder: ProbeResponder | undefined;
  #client: ProbeClient | undefined;
  #server: BoundServer | undefined;
  #window: ProbeWindow;
  #bandwidth: number[] = [];
  #lastTrain = 0;
  #peer: PublishedGatewayState | undefined;
  #promotedKey: string | undefined;
  #activeKey: string | undefined;
  #stagedKey: string | undefined;
  #configuredSince = new Date();
  #configErrors: string[] = [];
  #underlay: { reachable: boolean; peerPublicKey?: string; peerAcceptsKeys?: readonly string[] } | undefined;
  #handshake = 0;
  /** When the current spell without a live WireGuard session began (undefined while live). */
  #deadSince: number | undefined;
  #status: LinkStatus | undefined;
  #rotateRequested = false;
  #lastRotation = Date.now();
  #published = { signature: '', at: 0 };
  #reconciling: Promise<void> = Promise.resolve();
  #lastIpCheck = 0;
  #lastRoutes = '';
  #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(cfg: GatewayConfig, deps: GatewayDeps) {
    this.cfg = cfg;
    this.#d = deps;
    this.metrics = deps.metrics ?? new LinkMetrics(cfg.site, cfg.peer.site);
    this.#window = new ProbeWindow(20);
  }

  #now(): Date { return this.#d.now?.() ?? new Date(); }

  /** Brings the link up and starts the loop; resolves once the first round has been published. */
  async start(): Promise<void> {
    this.#keys = await loadOrCreateKeys(this.#d.keys);
    try {
      this.#device = await WgDevice.open(this.cfg.interfaceName, this.#d.log);
      this.#responder = await ProbeResponder.listen(this.cfg.probePort, () => ({
        publicKey: this.#keys.current.publicKey(),
        peerKeys: [this.#activeKey, this.#stagedKey].filter((k): k is string => !!k),
      }));
      this.#client = await ProbeClient.open();
      if (this.cfg.metricsBindAddress) this.#server = await (this.#d.serve ?? serveHttp)(this.cfg.metricsBindAddress, (req, res) => this.handleHttp(req, res));
    } catch (e) {
      // e.g. the probe port is taken: do not leave a wireguard-go child behind.
      await this.stop().catch(() => undefined);
      throw e;
    }
    await this.#round();
    this.#loop = this.#run();
  }

  /** Starts a key rotation at the next tick (SIGUSR1 in the CLI). */
  requestRotation(): void { this.#rotateRequested = true; }

  status(): LinkStatus | undefined { return this.#status; }
  publicKey(): string { return this.#keys.current.publicKey(); }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop?.catch(() => undefined);
    await this.#client?.close();
    await this.#responder?.close();
    await this.#server?.close();
    await this.#device?.close();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    // Ticks are scheduled from the previous tick's start, not its end: a failing probe takes the
    // full timeout, and the outage bound (status.ts) must not stretch by that much per miss.
    let next = Date.now();
    const watcher = this.#watchStaged(signal);
    while (!signal.aborted) {
      next = Math.max(next + this.cfg.probeIntervalMs, Date.now());
      await sleep(next - Date.now(), signal);
      if (signal.aborted) break;
      await this.#round().catch((e: unknown) => this.#d.log.error('gateway round failed', { error: String(e) }));
    }
    await watcher;
  }

  /**
   * While a peer key is staged, polls the device every 50 ms, independently of the probe rounds
   * (which can take over a second when probes time out on a saturated link), so the promotion
   * follows the peer's switch within ~50 ms plus one reconcile: the only window in which tunnel
   * packets are dropped during a rotation.
   */
  async #watchStaged(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(STAGED_POLL_MS, signal);
      if (this.#stagedKey && !signal.aborted && await this.#stagedHandshakeSeen()) {
        await this.#reconcileSerial().catch((e: unknown) => this.#d.log.warn('reconcile failed', { error: String(e) }));
      }
    }
  }

  /** Reconciles never overlap (the round and the staged-key watcher both call this). */
  #reconcileSerial(): Promise<void> {
    const run = this.#reconciling.then(() => this.#reconcile());
    this.#reconciling = run.catch(() => undefined);
    return run;
  }

  /** The cheap check of the fast poll: one `wg show dump`, full reconcile only when it matters. */
  async #stagedHandshakeSeen(): Promise<boolean> {
    try {
      const dev = await readDevice(this.cfg.interfaceName);
      return (dev.peers.find((p) => p.publicKey === this.#stagedKey)?.latestHandshakeSec ?? 0) > 0;
    } catch {
      return false;
    }
  }

  async #round(): Promise<void> {
    if (this.#d.peerSource) {
      try { this.cfg.peer = await this.#d.peerSource(); } catch (e) {
        this.#d.log.warn('reading peer site config failed; keeping the last one', { error: String(e) });
      }
    }
    try { this.#peer = (await this.#d.exchange.readPeer()) ?? this.#peer; } catch (e) {
      this.#d.log.warn('reading peer gateway state failed', { error: String(e) });
    }
    await this.#healDataPlane();
    await this.#rotate();
    await this.#reconcileSerial();
    await this.#probe();
    const status = evaluateLink({
      now: this.#now(),
      configErrors: this.#configErrors,
      ...(this.#activeKey ? { peerPublicKey: this.#activeKey } : {}),
      localPublicKey: this.#keys.current.publicKey(),
      dataPlaneAlive: this.#device?.alive() ?? false,
      configuredSince: this.#configuredSince,
      latestHandshakeSec: this.#handshake,
      consecutiveMisses: this.#window.consecutiveMisses(),
      everSucceeded: this.#window.everSucceeded(),
      ...optional('rttMs', this.#window.rttMs()),
      ...optional('lossRatio', this.#window.lossRatio()),
      ...optional('bandwidthBps', median(this.#bandwidth)),
      ...(this.#underlay ? { underlay: this.#underlay } : {}),
      peerDescription: `peer gateway ${this.cfg.peer.site} (${this.cfg.peer.endpoint})`,
    }, { ...DEFAULT_EVALUATE, missThreshold: this.cfg.missThreshold });
    const prev = this.#status;
    this.#status = status;
    this.metrics.update(status);
    if (!prev || prev.ready !== status.ready || prev.reason !== status.reason) {
      const [type, reason] = status.ready ? ['Normal', 'LinkUp'] as const
        : status.reason === 'Connecting' ? ['Normal', 'LinkConnecting'] as const : ['Warning', 'LinkDown'] as const;
      await this.#event(type, reason, `${status.reason}: ${status.message}`);
    }
    await this.#publish();
  }

  async #event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await this.#d.events.emit({ type, reason, message, time: this.#now().toISOString() }).catch(() => undefined);
  }

  async #publish(): Promise<void> {
    const state: PublishedGatewayState = {
      site: this.cfg.site,
      publicKey: this.#keys.current.publicKey(),
      ...(this.#keys.next ? { nextPublicKey: this.#keys.next.publicKey() } : {}),
      ...(this.#stagedKey ? { stagedPeerKeys: [this.#stagedKey] } : {}),
      peerKeys: [this.#activeKey, this.#stagedKey].filter((k): k is string => !!k),
      ...(this.cfg.endpoint ? { endpoint: this.cfg.endpoint } : {}),
      tunnelAddress: this.cfg.tunnelAddress,
      networks: this.cfg.networks,
      peerNetworks: this.cfg.peer.networks,
      ...(this.cfg.nodeAddress ? { nodeAddress: this.cfg.nodeAddress } : {}),
      probePort: this.cfg.probePort,
      ...(this.#status ? { link: this.#status } : {}),
      updatedAt: this.#now().toISOString(),
    };
    // Write on every change that matters (keys, rotation, readiness, reason) at once, and the
    // fresh measurements as a heartbeat: one ConfigMap write per second per link would be a
    // needless steady load on etcd. Readers treat a state older than 15 s as not reporting.
    const l = state.link;
    const signature = JSON.stringify({ ...state, updatedAt: undefined, link: l ? { ready: l.ready, reason: l.reason } : undefined });
    if (signature === this.#published.signature && Date.now() - this.#published.at < PUBLISH_HEARTBEAT_MS) return;
    try {
      await this.#d.exchange.publish(state);
      this.#published = { signature, at: Date.now() };
    } catch (e) {
      this.#d.log.warn('publishing gateway state failed', { error: String(e) });
    }
  }

  /**
   * A dead wireguard-go (crash, OOM kill) is restarted; the next reconcile reapplies the whole
   * config. Sessions are renegotiated, so the outage is about one handshake.
   */
  async #healDataPlane(): Promise<void> {
    const dev = this.#device;
    if (!dev || dev.alive()) return;
    this.#d.log.warn('wireguard data plane died; restarting it', { ifname: this.cfg.interfaceName });
    await this.#event('Warning', 'DataPlaneRestarted', `wireguard-go for ${this.cfg.interfaceName} exited; restarting it`);
    try {
      await dev.close();
      this.#device = await WgDevice.open(this.cfg.interfaceName, this.#d.log);
      this.#lastIpCheck = 0; // a new interface has no address, link state or routes yet
    } catch (e) {
      this.#d.log.error('restarting the wireguard data plane failed', { error: String(e) });
    }
  }

  /** Rotation phases 1 and 3 for this gateway's own key (rotation.ts). */
  async #rotate(): Promise<void> {
    const due = this.cfg.rotateIntervalMs > 0 && Date.now() - this.#lastRotation >= this.cfg.rotateIntervalMs;
    if ((this.#rotateRequested || due) && !this.#keys.next) {
      this.#rotateRequested = false;
      this.#lastRotation = Date.now();
      const next = generateKeyPair();
      this.#keys = { current: this.#keys.current, next: next.privateKey };
      await this.#d.keys.save(this.#keys);
      await this.#event('Normal', 'KeyRotationStarted', `announced next public key ${keyFingerprint(next.publicKey)}; waiting for ${this.cfg.peer.site} to stage it`);
    }
    if (this.#keys.next && shouldSwitch(this.#keys, this.#peer)) {
      this.#keys = { current: this.#keys.next };
      await this.#d.keys.save(this.#keys);
      this.metrics.rotated();
      await this.#event('Normal', 'KeyRotated', `switched to public key ${keyFingerprint(this.#keys.current.publicKey())} after ${this.cfg.peer.site} staged it`);
    }
  }

  #allowedIPs(): string[] {
    const peerHost = `${addressOf(this.cfg.peer.tunnelAddress)}/${this.cfg.peer.tunnelAddress.includes(':') ? 128 : 32}`;
    return [peerHost, ...this.cfg.peer.networks];
  }

  /** Applies the desired WireGuard config (idempotent), including rotation phases 2 and 4. */
  async #reconcile(): Promise<void> {
    let device: WgDeviceState | undefined;
    try { device = await readDevice(this.cfg.interfaceName); } catch (e) {
      this.#d.log.warn('reading wireguard device failed', { error: String(e) });
    }
    if (this.#promotedKey && this.#peer?.publicKey === this.#promotedKey) this.#promotedKey = undefined;
    const plan = planPeerKeys({
      ...(this.cfg.peer.publicKey ? { pinnedKey: this.cfg.peer.publicKey } : {}),
      ...(this.#promotedKey ? { promotedKey: this.#promotedKey } : {}),
      peer: this.#peer,
      device,
    });
    if (plan.promoted) this.#promotedKey = plan.promoted;
    if (plan.activeKey !== this.#activeKey) {
      this.#configuredSince = this.#now();
      // Either our fast poll saw the handshake on the staged entry (promotion), or the peer's
      // published key changed first: both are the peer's rotation completing.
      if (this.#activeKey && plan.activeKey) {
        await this.#event('Normal', 'PeerKeyRotated', `${this.cfg.peer.site} now uses key ${keyFingerprint(plan.activeKey)} (was ${keyFingerprint(this.#activeKey)}); its ranges moved to the new key${plan.promoted ? ' on its first handshake' : ''}`);
      }
    }
    this.#activeKey = plan.activeKey;
    this.#stagedKey = plan.stagedKey;
    this.#handshake = device?.peers.find((p) => p.publicKey === plan.activeKey)?.latestHandshakeSec ?? 0;
    this.#trackSession();
    const peers = peerEntries(plan, {
      endpoint: this.cfg.peer.endpoint,
      allowedIPs: this.#allowedIPs(),
      persistentKeepaliveSec: this.#passive() ? 0 : this.cfg.persistentKeepaliveSec,
    });
    const routes = [...this.cfg.peer.networks];
    const ownSubnet = normalizeCidr(this.cfg.tunnelAddress);
    const peerHost = this.#allowedIPs()[0];
    if (!overlaps(ownSubnet, peerHost)) routes.push(peerHost);
    const desired: WgInterfaceConfig = {
      name: this.cfg.interfaceName,
      privateKey: this.#keys.current,
      listenPort: this.cfg.listenPort,
      addresses: [this.cfg.tunnelAddress],
      peers,
      routes,
    };
    const opts = { allowDefaultRoute: this.cfg.allowDefaultRoute ?? false };
    const errs = validateConfig(desired, opts);
    for (const n of this.cfg.networks) {
      for (const p of this.cfg.peer.networks) if (overlaps(n, p)) errs.push(`peer range ${p} overlaps local range ${n}`);
    }
    if (errs.join() !== this.#configErrors.join()) this.#configErrors = errs;
    if (errs.length) {
      // An invalid config is never applied; peers are removed so nothing unintended is allowed.
      if (device?.peers.length) await applyConfig({ ...desired, peers: [], routes: [] }).catch(() => undefined);
      return;
    }
    const ipDue = Date.now() - this.#lastIpCheck >= IP_CHECK_INTERVAL_MS || desired.routes.join() !== this.#lastRoutes;
    const res = await applyConfig(desired, { ...opts, ...(device ? { actual: device } : {}), checkIp: ipDue });
    if (ipDue) { this.#lastIpCheck = Date.now(); this.#lastRoutes = desired.routes.join(); }
    // Peer changes can come with a fresh device (a restarted wireguard-go): check the rest at once.
    else if (res.changed) this.#lastIpCheck = 0;
    if (res.changed) this.#d.log.info('wireguard config applied', { ifname: this.cfg.interfaceName, changes: res.changes });
  }

  /**
   * True while this gateway must not send into the tunnel: without a live session, only the side
   * with the lower public key initiates. If both sides send at once, each answers the other's
   * handshake initiation, which discards its own pending one, so both responses are rejected;
   * with both gateways started together and probing on the same schedule this was seen to repeat
   * for minutes. Once a session exists WireGuard itself leaves rekeying to the session's initiator.
   * The restraint lasts PASSIVE_WINDOW_MS per dead spell: both sides judge by the keys they hold,
   * and mid-rotation over a long outage they may disagree, so neither may wait forever.
   */
  #passive(): boolean {
    const peer = this.#activeKey;
    if (!peer || this.#keys.current.publicKey() < peer || this.#deadSince === undefined) return false;
    return Date.now() - this.#deadSince < PASSIVE_WINDOW_MS;
  }

  #trackSession(): void {
    const live = this.#handshake > 0 && Date.now() / 1000 - this.#handshake <= REJECT_AFTER_SEC;
    if (live) this.#deadSince = undefined;
    else this.#deadSince ??= Date.now();
  }

  async #probe(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const peerTunnel = addressOf(this.cfg.peer.tunnelAddress);
    const endpointHost = this.cfg.peer.endpoint.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const t = this.cfg.probeTimeoutMs;
    // The peer says where its responder listens (several gateways on one host need distinct ports).
    const port = this.#peer?.probePort ?? this.cfg.probePort;
    const [tunnel, underlay]: (EchoReply | undefined)[] = await Promise.all([
      this.#activeKey && !this.#configErrors.length && !this.#passive() ? client.echo(peerTunnel, port, t) : Promise.resolve(undefined),
      client.echo(endpointHost, port, t),
    ]);
    if (!this.#passive()) this.#window.record(tunnel?.rttMs);
    this.#underlay = underlay
      ? { reachable: true, ...(underlay.identity ? { peerPublicKey: underlay.identity.publicKey, peerAcceptsKeys: underlay.identity.peerKeys } : {}) }
      : { reachable: false };
    const bw = this.cfg.bandwidthProbe;
    if (tunnel && bw.count > 0 && Date.now() - this.#lastTrain >= bw.intervalMs) {
      this.#lastTrain = Date.now();
      const est = await client.train(peerTunnel, port, bw.count, bw.size, t);
      if (est !== undefined) {
        this.#bandwidth.push(est);
        if (this.#bandwidth.length > 5) this.#bandwidth.shift();
      }
    }
  }

  /** Port the HTTP endpoints listen on (undefined when off). */
  httpPort(): number | undefined { return this.#server?.port; }

  /**
   * GET /metrics (Prometheus) and /status (the link status as JSON: reason, RTT, peer key
   * fingerprints) for scrapers; /healthz answers "ok" and nothing else (GATEWAY_OPEN_PATHS).
   */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url?.split('?')[0] ?? '/';
    if (path === '/metrics') {
      const text = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(text);
    } else if (path === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.#status ?? {}));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    } else { res.writeHead(404); res.end(); }
  }
}

function optional<K extends string>(k: K, v: number | undefined): Partial<Record<K, number>> {
  return v === undefined ? {} : ({ [k]: v } as Record<K, number>);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) { resolve(); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = (): void => { clearTimeout(t); resolve(); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
