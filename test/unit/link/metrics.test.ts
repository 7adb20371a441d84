import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkMetrics } from '../../../src/link/metrics.ts';

test('link metrics expose rtt, loss, up and bandwidth per site pair', async () => {
  const m = new LinkMetrics('site-a', 'site-b');
  m.update({ ready: true, reason: 'LinkUp', message: '', rttMs: 61.5, lossRatio: 0.05, bandwidthBps: 12_500_000 });
  const text = await m.registry.metrics();
  assert.match(text, /cloudnet_link_rtt_seconds\{site="site-a",peer="site-b"\} 0\.0615/);
  assert.match(text, /cloudnet_link_loss_ratio\{site="site-a",peer="site-b"\} 0\.05/);
  assert.match(text, /cloudnet_link_up\{site="site-a",peer="site-b"\} 1/);
  assert.match(text, /cloudnet_link_bandwidth_bytes_per_second\{site="site-a",peer="site-b"\} 12500000/);
  m.update({ ready: false, reason: 'PeerUnreachable', message: '' });
  assert.match(await m.registry.metrics(), /cloudnet_link_up\{site="site-a",peer="site-b"\} 0/);
});
