// Key rotation without dropping established connections.
//
// WireGuard holds one private key per interface and names a peer by its public key, so a rotation
// replaces a key on one side and the peer entry on the other. Done naively (both sides "at about
// the same time") the tunnel is down until both have changed plus a handshake retry (5 s). This
// two-phase protocol, driven entirely through the published gateway states, keeps the gap to one
// handshake plus one fast poll and one `wg set` (~0.1–0.5 s on a loaded 2-core machine), which TCP
// inside the tunnel rides out by retransmitting:
//
//  1. announce  The rotating gateway R generates its next key, stores it in its key Secret next to
//               the current one, and publishes `nextPublicKey`.
//  2. stage     The peer P adds a second peer entry for R's next key with no allowed-ips (so it
//               cannot carry traffic yet) and publishes it in `stagedPeerKeys` (the acknowledgement).
//  3. switch    R sees the acknowledgement and sets its private key to the next one. Its session
//               keys expire, so its next packet starts a handshake with the new key, which P's staged
//               entry accepts. P → R traffic keeps flowing meanwhile: R still decrypts with the old
//               session's receive keys (valid for up to 180 s).
//  4. promote   P polls `wg show` every 50 ms while a key is staged; once the staged entry has a
//               handshake, P moves the allowed-ips onto it (one atomic trie update) and removes the
//               old entry. R publishes the new key as `publicKey` and drops `nextPublicKey`.
//
// A gateway restarting mid-rotation resumes it: the next key is in the Secret, and the peer's
// staged entry is rebuilt from the published states.
import type { StoredKeys } from './keystore.ts';
import type { PublishedGatewayState } from './exchange.ts';
import type { WgDeviceState, WgPeerConfig } from './wireguard.ts';

export interface PeerKeyPlan {
  /** The key the peer entry carrying traffic uses; undefined until the peer's key is known. */
  activeKey: string | undefined;
  /** Peer's announced next key, staged without allowed-ips. */
  stagedKey: string | undefined;
  /** Set when this call promoted the staged key (the caller remembers it until the peer publishes it). */
  promoted: string | undefined;
}

export interface PeerKeyInput {
  /** Key fixed by configuration (Site.spec.gateway.publicKey or a flag); overrides the published one. */
  pinnedKey?: string;
  /** A key this gateway promoted earlier that the peer has not published as current yet. */
  promotedKey?: string;
  peer: PublishedGatewayState | undefined;
  device: WgDeviceState | undefined;
}

export function planPeerKeys(i: PeerKeyInput): PeerKeyPlan {
  let active = i.promotedKey ?? i.pinnedKey ?? i.peer?.publicKey;
  const announced = i.peer?.nextPublicKey;
  let staged: string | undefined;
  let promoted: string | undefined;
  if (announced && announced !== active) {
    const entry = i.device?.peers.find((p) => p.publicKey === announced);
    if (entry && entry.latestHandshakeSec > 0) {
      active = announced;
      promoted = announced;
    } else {
      staged = announced;
    }
  }
  return { activeKey: active, stagedKey: staged, promoted };
}

/** The peer entries for the interface: the active one with its ranges, and a staged one if any. */
export function peerEntries(plan: PeerKeyPlan, base: Omit<WgPeerConfig, 'publicKey'>): WgPeerConfig[] {
  const out: WgPeerConfig[] = [];
  if (plan.activeKey) out.push({ ...base, publicKey: plan.activeKey });
  // No keepalive on the staged entry: it must not initiate handshakes with a key R does not use yet.
  if (plan.stagedKey) out.push({ publicKey: plan.stagedKey, ...(base.endpoint ? { endpoint: base.endpoint } : {}), allowedIPs: [] });
  return out;
}

/** Step 3 for the rotating side: switch once the peer has acknowledged our next key. */
export function shouldSwitch(keys: StoredKeys, peer: PublishedGatewayState | undefined): boolean {
  return !!keys.next && !!peer?.stagedPeerKeys?.includes(keys.next.publicKey());
}
