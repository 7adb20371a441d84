// LinkReady evaluation: a pure function from what the gateway observed to a condition, so every
// reason can be unit-tested without a network.
//
// Outage detection bound: a cut link is reported (LinkReady=False) at most
//   probeIntervalMs × missThreshold + probeTimeoutMs + one tick of slack (config reconcile, publish)
// after the cut; with the gateway defaults (1 s × 3 + 0.9 s + 1 s) that is ≤ 5 s. Ticks run from
// the previous tick's start, so a timed-out probe does not delay the next one.
// Recovery is reported on the first answered tunnel probe after WireGuard re-handshakes, which
// wireguard-go retries every 5 s (REKEY_TIMEOUT) while probes keep traffic flowing: ≤ ~7 s.
import { keyFingerprint } from './keys.ts';

export const LinkReasons = {
  LinkUp: 'LinkUp',
  Connecting: 'Connecting',
  ConfigInvalid: 'ConfigInvalid',
  PeerKeyMissing: 'PeerKeyMissing',
  PeerKeyMismatch: 'PeerKeyMismatch',
  PeerUnreachable: 'PeerUnreachable',
  HandshakeStale: 'HandshakeStale',
  ProbeFailed: 'ProbeFailed',
  DataPlaneDown: 'DataPlaneDown',
  GatewayNotReporting: 'GatewayNotReporting',
} as const;
export type LinkReason = (typeof LinkReasons)[keyof typeof LinkReasons];

/** What the Site controller copies into Site.status (LinkReady condition, rttMs, lossRatio…). */
export interface LinkStatus {
  ready: boolean;
  reason: LinkReason;
  message: string;
  rttMs?: number;
  lossRatio?: number;
  bandwidthBps?: number;
  /** ISO time of the last probe round. */
  lastProbeTime?: string;
  /** Unix seconds of the last WireGuard handshake with the peer; 0 = never. */
  latestHandshakeSec?: number;
}

export interface LinkObservation {
  now: Date;
  configErrors: readonly string[];
  /** Peer public key this gateway has configured (undefined = not yet known). */
  peerPublicKey?: string;
  localPublicKey: string;
  dataPlaneAlive: boolean;
  /** Since when the current peer config has been applied (handshake grace starts here). */
  configuredSince: Date;
  latestHandshakeSec: number;
  consecutiveMisses: number;
  everSucceeded: boolean;
  rttMs?: number;
  lossRatio?: number;
  bandwidthBps?: number;
  /** Outcome of the last probe to the peer's public endpoint, outside the tunnel. */
  underlay?: { reachable: boolean; peerPublicKey?: string; peerAcceptsKeys?: readonly string[] };
  peerDescription: string;
}

export interface EvaluateOptions {
  missThreshold: number;
  /** A handshake older than this with probes failing is stale. WireGuard rekeys every 120 s. */
  handshakeStaleSec: number;
  /** How long a fresh config may go without a handshake before a key problem is declared. */
  handshakeGraceMs: number;
}

export const DEFAULT_EVALUATE: EvaluateOptions = { missThreshold: 3, handshakeStaleSec: 180, handshakeGraceMs: 12_000 };

export function evaluateLink(o: LinkObservation, opts: EvaluateOptions = DEFAULT_EVALUATE): LinkStatus {
  const metrics = {
    ...(o.rttMs !== undefined ? { rttMs: round(o.rttMs) } : {}),
    ...(o.lossRatio !== undefined ? { lossRatio: round(o.lossRatio) } : {}),
    ...(o.bandwidthBps !== undefined ? { bandwidthBps: Math.round(o.bandwidthBps) } : {}),
    lastProbeTime: o.now.toISOString(),
    latestHandshakeSec: o.latestHandshakeSec,
  };
  const no = (reason: LinkReason, message: string): LinkStatus => ({ ready: false, reason, message, ...metrics });
  if (o.configErrors.length) return no(LinkReasons.ConfigInvalid, `link config rejected: ${o.configErrors.join('; ')}`);
  if (!o.peerPublicKey) return no(LinkReasons.PeerKeyMissing, `waiting for ${o.peerDescription} to publish its WireGuard public key`);
  if (!o.dataPlaneAlive) return no(LinkReasons.DataPlaneDown, 'the WireGuard data plane (wireguard-go) is not running');

  const failing = o.consecutiveMisses >= opts.missThreshold || !o.everSucceeded;
  if (!failing) {
    return {
      ready: true, reason: LinkReasons.LinkUp, ...metrics,
      message: `tunnel to ${o.peerDescription} up: rtt ${fmt(o.rttMs)} ms (median of tunnel UDP echoes), loss ${fmt((o.lossRatio ?? 0) * 100)}%`
        + (o.bandwidthBps !== undefined ? `, ~${fmt(o.bandwidthBps / 1e6)} MB/s (packet-train estimate)` : ''),
    };
  }
  const nowSec = o.now.getTime() / 1000;
  const handshakeAge = o.latestHandshakeSec > 0 ? nowSec - o.latestHandshakeSec : Infinity;
  const inGrace = o.now.getTime() - o.configuredSince.getTime() < opts.handshakeGraceMs;
  const u = o.underlay;
  if (u?.reachable) {
    if (u.peerPublicKey && u.peerPublicKey !== o.peerPublicKey) {
      return no(LinkReasons.PeerKeyMismatch, `${o.peerDescription} presents WireGuard public key ${keyFingerprint(u.peerPublicKey)} but this gateway is configured with peer key ${keyFingerprint(o.peerPublicKey)}; handshakes are refused`);
    }
    if (u.peerAcceptsKeys && u.peerAcceptsKeys.length === 0) {
      // The peer has not learned any key for us yet (it has not read our published state): not a
      // mismatch, and normal for the first seconds after either side starts.
      if (inGrace) return no(LinkReasons.Connecting, `bringing up the tunnel to ${o.peerDescription} (it has no key for this gateway yet)`);
      return no(LinkReasons.PeerKeyMissing, `${o.peerDescription} has not configured a key for this gateway; can it read this site's published gateway state?`);
    }
    if (u.peerAcceptsKeys && !u.peerAcceptsKeys.includes(o.localPublicKey)) {
      return no(LinkReasons.PeerKeyMismatch, `${o.peerDescription} does not accept this gateway's public key ${keyFingerprint(o.localPublicKey)} (it expects ${u.peerAcceptsKeys.map(keyFingerprint).join(', ') || 'no key'}); handshakes are refused`);
    }
    if (handshakeAge > opts.handshakeStaleSec && !inGrace) {
      return no(LinkReasons.PeerKeyMismatch, `${o.peerDescription} answers on its public endpoint but no WireGuard handshake completes (${o.latestHandshakeSec ? `last ${Math.round(handshakeAge)} s ago` : 'never'}): the peer key or the peer's copy of ours is wrong`);
    }
  }
  if (!o.everSucceeded && inGrace) return no(LinkReasons.Connecting, `bringing up the tunnel to ${o.peerDescription}`);
  if (u && !u.reachable) {
    return no(LinkReasons.PeerUnreachable, `${o.peerDescription} does not answer on its public endpoint or through the tunnel (${o.consecutiveMisses} probes missed)`);
  }
  if (handshakeAge > opts.handshakeStaleSec) {
    return no(LinkReasons.HandshakeStale, `no WireGuard handshake with ${o.peerDescription} for ${Number.isFinite(handshakeAge) ? `${Math.round(handshakeAge)} s` : 'ever'}`);
  }
  return no(LinkReasons.ProbeFailed, `tunnel to ${o.peerDescription} has a recent handshake but ${o.consecutiveMisses} probes through it went unanswered`);
}

function round(x: number): number { return Math.round(x * 1000) / 1000; }
function fmt(x: number | undefined): string { return x === undefined ? '?' : x.toFixed(x < 10 ? 2 : 1); }
