import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convergenceAdvice, type RoundStats } from '../../../src/relay/codec/index.ts';

const rounds = (pages: number[]): RoundStats[] => pages.map((p, i) => ({
  round: i + 1, startMs: i * 1000, endMs: i * 1000 + 900, pages: p, zeroPages: 0, rawBytes: p * 4104, opBytes: p * 100, modes: {},
}));

test('keeps iterating while rounds shrink, stops when the dirty set plateaus', () => {
  assert.equal(convergenceAdvice(rounds([60000, 20000, 8000, 3000, 1000])).stopNow, false);
  const flat = convergenceAdvice(rounds([60000, 9000, 8800, 8900, 8850, 0]), { throughputBps: 50e6 });
  assert.equal(flat.stopNow, true);
  assert.equal(flat.trend, 'flat');
  assert.equal(flat.minPages, 8800);
  assert.equal(flat.suggestedDowntimeMs, Math.ceil(8850 * 4096 / 50e6 * 1000));
  assert.equal(convergenceAdvice(rounds([60000, 5000, 9000, 12000, 0])).trend, 'growing');
  assert.equal(convergenceAdvice(rounds([60000, 5000])).trend, 'unknown');
});
