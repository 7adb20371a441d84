import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromFlags } from '../../../src/link/cli.ts';

test('gateway flags become a config with defaults; required flags are named when missing', () => {
  const cfg = configFromFlags({
    site: 'site-a', interface: 'cna', 'tunnel-address': '198.18.10.1/24', 'peer-site': 'site-b',
    'peer-endpoint': '203.0.113.2:51820', 'peer-tunnel-address': '198.18.10.2/24', 'peer-network': ['198.51.100.0/24'],
    network: ['192.0.2.0/24'], 'probe-interval-ms': '500',
  });
  assert.equal(cfg.listenPort, 51820);
  assert.equal(cfg.probeIntervalMs, 500);
  assert.equal(cfg.missThreshold, 3);
  assert.deepEqual(cfg.peer, { site: 'site-b', endpoint: '203.0.113.2:51820', tunnelAddress: '198.18.10.2/24', networks: ['198.51.100.0/24'] });
  assert.throws(() => configFromFlags({ site: 'a' }), /--peer-site is required/);
  assert.throws(() => configFromFlags({ site: 'a', interface: 'x', 'tunnel-address': '198.18.10.1/24', 'peer-site': 'b', 'peer-endpoint': 'h:1', 'peer-tunnel-address': '198.18.10.2/24', 'miss-threshold': '-1' }), /non-negative/);
});
