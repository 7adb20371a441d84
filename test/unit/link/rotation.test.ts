import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '../../../src/link/keys.ts';
import { peerEntries, planPeerKeys, shouldSwitch } from '../../../src/link/rotation.ts';
import type { PublishedGatewayState } from '../../../src/link/exchange.ts';
import type { WgDeviceState } from '../../../src/link/wireguard.ts';

const oldKey = generateKeyPair();
const nextKey = generateKeyPair();
const base = { endpoint: '203.0.113.2:51820', allowedIPs: ['198.18.10.2/32', '198.51.100.0/24'], persistentKeepaliveSec: 5 };

function published(over: Partial<PublishedGatewayState>): PublishedGatewayState {
  return { site: 'b', publicKey: oldKey.publicKey, updatedAt: new Date(0).toISOString(), ...over };
}

function device(peers: { key: string; handshake: number }[]): WgDeviceState {
  return { listenPort: 51820, peers: peers.map((p) => ({ publicKey: p.key, allowedIPs: [], latestHandshakeSec: p.handshake, rxBytes: 0, txBytes: 0 })) };
}

test('no peer state: nothing to configure', () => {
  const plan = planPeerKeys({ peer: undefined, device: undefined });
  assert.deepEqual(plan, { activeKey: undefined, stagedKey: undefined, promoted: undefined });
  assert.deepEqual(peerEntries(plan, base), []);
});

test('a pinned key wins over the published one', () => {
  const pinned = generateKeyPair().publicKey;
  assert.equal(planPeerKeys({ pinnedKey: pinned, peer: published({}), device: undefined }).activeKey, pinned);
});

test('phase 2: an announced next key is staged without allowed-ips or keepalive', () => {
  const plan = planPeerKeys({ peer: published({ nextPublicKey: nextKey.publicKey }), device: device([{ key: oldKey.publicKey, handshake: 100 }]) });
  assert.equal(plan.activeKey, oldKey.publicKey);
  assert.equal(plan.stagedKey, nextKey.publicKey);
  assert.deepEqual(peerEntries(plan, base), [
    { ...base, publicKey: oldKey.publicKey },
    { publicKey: nextKey.publicKey, endpoint: base.endpoint, allowedIPs: [] },
  ]);
});

test('phase 4: a handshake on the staged entry promotes it', () => {
  const plan = planPeerKeys({
    peer: published({ nextPublicKey: nextKey.publicKey }),
    device: device([{ key: oldKey.publicKey, handshake: 100 }, { key: nextKey.publicKey, handshake: 200 }]),
  });
  assert.deepEqual(plan, { activeKey: nextKey.publicKey, stagedKey: undefined, promoted: nextKey.publicKey });
  assert.deepEqual(peerEntries(plan, base), [{ ...base, publicKey: nextKey.publicKey }]);
  // Remembered promotion keeps the new key even while the peer still publishes the old one.
  const later = planPeerKeys({ promotedKey: nextKey.publicKey, peer: published({ nextPublicKey: nextKey.publicKey }), device: undefined });
  assert.equal(later.activeKey, nextKey.publicKey);
  assert.equal(later.stagedKey, undefined);
});

test('phase 3: the rotating side switches only after the peer acknowledged its next key', () => {
  const keys = { current: oldKey.privateKey, next: nextKey.privateKey };
  assert.equal(shouldSwitch(keys, published({})), false);
  assert.equal(shouldSwitch(keys, published({ stagedPeerKeys: [generateKeyPair().publicKey] })), false);
  assert.equal(shouldSwitch(keys, published({ stagedPeerKeys: [nextKey.publicKey] })), true);
  assert.equal(shouldSwitch({ current: oldKey.privateKey }, published({ stagedPeerKeys: [nextKey.publicKey] })), false);
});
