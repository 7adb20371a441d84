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

test('the gateway\'s HTTP endpoints: authenticated on all addresses in a cluster, plain on loopback otherwise', async () => {
  const { metricsBindAddress, metricsSecure } = await import('../../../src/link/cli.ts');
  assert.equal(metricsBindAddress({}), '', 'off without a port');
  assert.equal(metricsBindAddress({ 'metrics-port': '9478' }), '127.0.0.1:9478', 'file mode: no API server to authenticate with');
  assert.equal(metricsBindAddress({ kube: true, 'metrics-port': '9478' }), ':9478');
  assert.equal(metricsSecure({ kube: true }), true);
  assert.equal(metricsBindAddress({ kube: true, 'metrics-port': '9478', 'metrics-secure': 'false' }), '127.0.0.1:9478', 'plain HTTP stays on loopback');
  assert.equal(metricsBindAddress({ kube: true, 'metrics-port': '9478', 'metrics-bind-address': '10.0.0.5:9478' }), '10.0.0.5:9478');
  assert.equal(metricsBindAddress({ 'metrics-bind-address': '0' }), '');
  assert.throws(() => metricsSecure({ kube: true, 'metrics-secure': 'maybe' }), /true or false/);
});
