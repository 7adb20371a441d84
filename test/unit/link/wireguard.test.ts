import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '../../../src/link/keys.ts';
import { parseDump, planPeerChanges, validateConfig, type WgInterfaceConfig } from '../../../src/link/wireguard.ts';

const me = generateKeyPair();
const peer = generateKeyPair();
const other = generateKeyPair();

function cfg(over: Partial<WgInterfaceConfig> = {}): WgInterfaceConfig {
  return {
    name: 'cn-test', privateKey: me.privateKey, listenPort: 51820, addresses: ['198.18.10.1/24'],
    peers: [{ publicKey: peer.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: ['198.18.10.2/32', '198.51.100.0/24'], persistentKeepaliveSec: 5 }],
    routes: ['198.51.100.0/24'], ...over,
  };
}

test('parseDump drops the private key and reads peers', () => {
  const dump = [
    ['SECRETPRIVATEKEY', me.publicKey, '51820', 'off'].join('\t'),
    [peer.publicKey, '(none)', '203.0.113.2:51820', '198.18.10.2/32,198.51.100.0/24', '1700000000', '1234', '5678', '5'].join('\t'),
    [other.publicKey, '(none)', '(none)', '(none)', '0', '0', '0', 'off'].join('\t'),
  ].join('\n') + '\n';
  const s = parseDump(dump);
  assert.ok(!JSON.stringify(s).includes('SECRETPRIVATEKEY'));
  assert.equal(s.publicKey, me.publicKey);
  assert.equal(s.listenPort, 51820);
  assert.deepEqual(s.peers[0], { publicKey: peer.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: ['198.18.10.2/32', '198.51.100.0/24'], latestHandshakeSec: 1700000000, rxBytes: 1234, txBytes: 5678, persistentKeepaliveSec: 5 });
  assert.deepEqual(s.peers[1], { publicKey: other.publicKey, allowedIPs: [], latestHandshakeSec: 0, rxBytes: 0, txBytes: 0 });
});

test('planPeerChanges: fresh device gets the peer; an in-sync device gets nothing', () => {
  const fresh = planPeerChanges(cfg(), { listenPort: 0, peers: [] });
  assert.deepEqual(fresh, [
    ['listen-port', '51820'],
    ['peer', peer.publicKey, 'endpoint', '203.0.113.2:51820', 'persistent-keepalive', '5', 'allowed-ips', '198.18.10.2/32,198.51.100.0/24'],
  ]);
  const inSync = { listenPort: 51820, peers: [{ publicKey: peer.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: ['198.51.100.0/24', '198.18.10.2/32'], latestHandshakeSec: 1, rxBytes: 0, txBytes: 0, persistentKeepaliveSec: 5 }] };
  assert.deepEqual(planPeerChanges(cfg(), inSync), []);
});

test('planPeerChanges moves ranges to a promoted key before removing the old peer', () => {
  const actual = { listenPort: 51820, peers: [
    { publicKey: peer.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: ['198.18.10.2/32', '198.51.100.0/24'], latestHandshakeSec: 1, rxBytes: 0, txBytes: 0, persistentKeepaliveSec: 5 },
    { publicKey: other.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: [], latestHandshakeSec: 2, rxBytes: 0, txBytes: 0 },
  ] };
  const desired = cfg({ peers: [{ publicKey: other.publicKey, endpoint: '203.0.113.2:51820', allowedIPs: ['198.18.10.2/32', '198.51.100.0/24'], persistentKeepaliveSec: 5 }] });
  assert.deepEqual(planPeerChanges(desired, actual), [
    ['peer', other.publicKey, 'persistent-keepalive', '5', 'allowed-ips', '198.18.10.2/32,198.51.100.0/24'],
    ['peer', peer.publicKey, 'remove'],
  ]);
});

test('validateConfig rejects a default route unless allowed, and other unsafe configs', () => {
  assert.deepEqual(validateConfig(cfg()), []);
  const wide = cfg({ peers: [{ publicKey: peer.publicKey, allowedIPs: ['0.0.0.0/0'] }] });
  assert.match(validateConfig(wide).join(), /all traffic/);
  assert.deepEqual(validateConfig(wide, { allowDefaultRoute: true }), []);
  assert.match(validateConfig(cfg({ name: 'this-name-is-too-long' })).join(), /interface name/);
  assert.match(validateConfig(cfg({ peers: [{ publicKey: 'nope', allowedIPs: [] }] })).join(), /not a WireGuard key/);
  assert.match(validateConfig(cfg({ peers: [{ publicKey: me.publicKey, allowedIPs: [] }] })).join(), /own public key/);
  assert.match(validateConfig(cfg({ peers: [
    { publicKey: peer.publicKey, allowedIPs: ['198.51.100.0/24'] },
    { publicKey: other.publicKey, allowedIPs: ['198.51.100.0/25'] },
  ] })).join(), /overlaps/);
  assert.match(validateConfig(cfg({ routes: ['198.51.100.0/99'] })).join(), /not a CIDR/);
});
