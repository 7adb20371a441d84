import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '../../../src/link/keys.ts';
import { evaluateLink, type LinkObservation } from '../../../src/link/status.ts';

const local = generateKeyPair().publicKey;
const peer = generateKeyPair().publicKey;
const now = new Date('2026-01-01T00:01:00Z');
const nowSec = now.getTime() / 1000;

function obs(over: Partial<LinkObservation> = {}): LinkObservation {
  return {
    now, configErrors: [], peerPublicKey: peer, localPublicKey: local, dataPlaneAlive: true,
    configuredSince: new Date(now.getTime() - 60_000), latestHandshakeSec: nowSec - 5, consecutiveMisses: 0,
    everSucceeded: true, rttMs: 40.2, lossRatio: 0, underlay: { reachable: true, peerPublicKey: peer, peerAcceptsKeys: [local] },
    peerDescription: 'peer gateway b', ...over,
  };
}

test('healthy link is ready with its measurements', () => {
  const s = evaluateLink(obs({ bandwidthBps: 12.5e6 }));
  assert.equal(s.ready, true);
  assert.equal(s.reason, 'LinkUp');
  assert.equal(s.rttMs, 40.2);
  assert.equal(s.bandwidthBps, 12500000);
  assert.equal(s.lastProbeTime, now.toISOString());
});

test('reasons, in priority order', () => {
  const cases: [Partial<LinkObservation>, string, RegExp][] = [
    [{ configErrors: ['allowed-ips 0.0.0.0/0'] }, 'ConfigInvalid', /0\.0\.0\.0\/0/],
    [{ peerPublicKey: undefined }, 'PeerKeyMissing', /publish/],
    [{ dataPlaneAlive: false }, 'DataPlaneDown', /wireguard-go/],
    [{ consecutiveMisses: 3, underlay: { reachable: false } }, 'PeerUnreachable', /does not answer/],
    [{ consecutiveMisses: 3, underlay: { reachable: true, peerPublicKey: generateKeyPair().publicKey, peerAcceptsKeys: [local] } }, 'PeerKeyMismatch', /presents WireGuard public key/],
    [{ consecutiveMisses: 3, underlay: { reachable: true, peerPublicKey: peer, peerAcceptsKeys: [generateKeyPair().publicKey] } }, 'PeerKeyMismatch', /does not accept/],
    [{ consecutiveMisses: 3, everSucceeded: false, latestHandshakeSec: 0, underlay: { reachable: true } }, 'PeerKeyMismatch', /no WireGuard handshake/],
    [{ consecutiveMisses: 3, latestHandshakeSec: nowSec - 400, underlay: undefined }, 'HandshakeStale', /400 s/],
    [{ consecutiveMisses: 3 }, 'ProbeFailed', /recent handshake/],
    [{ consecutiveMisses: 1, everSucceeded: false, configuredSince: now }, 'Connecting', /bringing up/],
    [{ everSucceeded: false, configuredSince: now, underlay: { reachable: true, peerPublicKey: peer, peerAcceptsKeys: [] } }, 'Connecting', /no key for this gateway yet/],
    [{ everSucceeded: false, underlay: { reachable: true, peerPublicKey: peer, peerAcceptsKeys: [] } }, 'PeerKeyMissing', /has not configured a key/],
  ];
  for (const [over, reason, msg] of cases) {
    const s = evaluateLink(obs(over));
    assert.equal(s.ready, false, reason);
    assert.equal(s.reason, reason, JSON.stringify(over));
    assert.match(s.message, msg);
  }
});

test('fewer misses than the threshold keep the link ready', () => {
  assert.equal(evaluateLink(obs({ consecutiveMisses: 2 })).ready, true);
  assert.equal(evaluateLink(obs({ consecutiveMisses: 3 })).ready, false);
});
