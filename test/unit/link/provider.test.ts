import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkMeasurements, linkReport } from '../../../src/link/provider.ts';
import type { PublishedGatewayState } from '../../../src/link/exchange.ts';
import type { LinkStatus } from '../../../src/link/status.ts';

const now = new Date('2026-01-01T00:00:30Z');
function state(link: Partial<LinkStatus> | undefined, updatedAt = '2026-01-01T00:00:29Z'): PublishedGatewayState {
  return { site: 'a', publicKey: 'k', updatedAt, ...(link ? { link: { ready: false, reason: 'LinkUp', message: 'm', ...link } } : {}) };
}

test('gateway state maps to the controller step report', () => {
  assert.equal(linkReport('b', undefined, now).reason, 'GatewayNotReporting');
  assert.equal(linkReport('b', state(undefined), now).state, 'Unavailable');
  assert.deepEqual(linkReport('b', state({ ready: true, reason: 'LinkUp', message: 'up' }), now), { state: 'Ready', reason: 'LinkUp', message: 'up' });
  assert.equal(linkReport('b', state({ reason: 'Connecting' }), now).state, 'Progressing');
  assert.equal(linkReport('b', state({ reason: 'PeerKeyMismatch' }), now).state, 'Failed');
  const stale = linkReport('b', state({ ready: true }, '2026-01-01T00:00:00Z'), now);
  assert.equal(stale.state, 'Unavailable');
  assert.match(stale.message, /30 s old/);
});

test('measurements are copied only when present', () => {
  assert.deepEqual(linkMeasurements(state({ rttMs: 40, lossRatio: 0, bandwidthBps: 1e6 })), { rttMs: 40, lossRatio: 0, bandwidthBps: 1e6 });
  assert.deepEqual(linkMeasurements(state({})), {});
  assert.deepEqual(linkMeasurements(undefined), {});
});
