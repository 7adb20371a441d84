import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exponentialDelay, jitter, RestartBackoff } from '../../../src/kube/backoff.ts';

test('exponentialDelay doubles and caps', () => {
  assert.equal(exponentialDelay(0, 5, 1000), 5);
  assert.equal(exponentialDelay(1, 5, 1000), 10);
  assert.equal(exponentialDelay(7, 5, 1000), 640);
  assert.equal(exponentialDelay(8, 5, 1000), 1000);
  assert.equal(exponentialDelay(5000, 5, 1000), 1000);
  assert.equal(exponentialDelay(-1, 5, 1000), 5);
});

test('jitter adds between 0 and factor*delay', () => {
  assert.equal(jitter(100, 1, () => 0), 100);
  assert.equal(jitter(100, 1, () => 0.999999), 199.9999);
  assert.equal(jitter(100, 0.2, () => 0.5), 110);
});

test('RestartBackoff grows with failures, stays within [d, 2d] and the cap, and resets', () => {
  let r = 0;
  const b = new RestartBackoff(100, 5000, () => r);
  assert.equal(b.next(), 100);
  assert.equal(b.next(), 200);
  r = 0.5;
  assert.equal(b.next(), 600); // 400 + 50%
  r = 0.99;
  for (let i = 0; i < 20; i++) assert.ok(b.next() <= 5000);
  assert.equal(b.consecutiveFailures, 23);
  b.reset();
  r = 0;
  assert.equal(b.next(), 100);
});
