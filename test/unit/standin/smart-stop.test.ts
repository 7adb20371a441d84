import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SmartStop } from '../../../test/standin/smart-stop.ts';
import type { MigrationSample } from '../../../src/qemu/migrate.ts';

const MB = 1e6;
const sample = (rounds: number, remaining: number, mbps = 100): MigrationSample =>
  ({ t: rounds * 1000, status: 'active', transferred: 0, remaining, rounds, dirtyPagesRate: 0, mbps });

test('a shrinking dirty set keeps iterating', () => {
  const s = new SmartStop();
  for (const [r, b] of [[1, 256], [2, 64], [3, 32], [4, 16], [5, 8]] as const) assert.equal(s.observe(sample(r, b * MB)), undefined);
});

test('a flat dirty set stops after the window, with the downtime the set needs', () => {
  const s = new SmartStop({ window: 2, minGain: 0.1, margin: 1.25 });
  const seen = [[1, 256], [2, 30], [3, 29], [4, 30]].map(([r, b]) => s.observe(sample(r, b * MB)));
  const d = seen.at(-1);
  assert.ok(d, 'decided at round 4');
  assert.equal(d.round, 4);
  // 30 MB at 100 Mbit/s = 2.4 s, plus 25 %.
  assert.equal(d.downtimeLimitMs, 3000);
  assert.equal(s.observe(sample(5, 30 * MB)), undefined, 'decides once');
});

test('too much downtime: leaves it to QEMU', () => {
  const s = new SmartStop({ maxDowntimeMs: 1000 });
  for (const [r, b] of [[1, 256], [2, 100], [3, 100], [4, 100]] as const) assert.equal(s.observe(sample(r, b * MB)), undefined);
});

test('samples within a round and non-active states are ignored', () => {
  const s = new SmartStop();
  assert.equal(s.observe({ ...sample(1, 10 * MB), status: 'setup' }), undefined);
  s.observe(sample(2, 30 * MB));
  s.observe(sample(2, 5 * MB));
  assert.equal(s.rounds[2], 30 * MB);
});
