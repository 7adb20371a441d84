// Pure helpers of the WAN test bed: wanem's parameter syntax and the steady-rate estimator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSpec } from '../../env/wan.ts';
import { steadyRate } from '../../env/tcp-probe.ts';

test('linkSpec renders only the fields given, in wanem syntax', () => {
  assert.deepEqual(linkSpec({}), []);
  assert.deepEqual(linkSpec({ rateBps: 100e6, delayMs: 25, jitterMs: 1.5, loss: 0.01, queueBytes: 625000, down: true, reorder: false }), [
    'rate=100000000',
    'delay=25ms',
    'jitter=1.5ms',
    'loss=0.01',
    'queue_bytes=625000',
    'reorder=0',
    'down=1',
  ]);
  assert.deepEqual(linkSpec({ down: false, gso: true, queuePackets: 100 }), ['queue_packets=100', 'down=0', 'gso=1']);
});

test('steadyRate is the least-squares slope in bit/s and shrugs off one late read', () => {
  // 1 MB per 10 ms = 800 Mbit/s.
  const even: Array<[number, number]> = Array.from({ length: 50 }, (_, i) => [i * 10, i * 1e6]);
  assert.ok(Math.abs(steadyRate(even) - 800e6) < 1);
  // The same transfer with one read delayed by 30 ms moves the fit by well under 5%.
  const bumpy = even.map(([t, b], i): [number, number] => (i === 25 ? [t + 30, b] : [t, b]));
  assert.ok(Math.abs(steadyRate(bumpy) - 800e6) / 800e6 < 0.05);
  assert.ok(Number.isNaN(steadyRate([[0, 0]])));
});
