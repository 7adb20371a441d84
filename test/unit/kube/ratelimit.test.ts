// The client-side token bucket: burst at once, then qps per second, in arrival order, abortable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket, requestPriority } from '../../../src/kube/ratelimit.ts';
import { FakeClock } from '../../../src/kube/clock.ts';

const tick = () => new Promise((r) => setImmediate(r));

test('burst requests pass at once, the next ones at qps, first come first served', async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ qps: 10, burst: 3 }, clock);
  const order: number[] = [];
  for (let i = 0; i < 6; i++) void b.acquire().then(() => order.push(i));
  await tick();
  assert.deepEqual(order, [0, 1, 2], 'the burst');
  assert.equal(b.waiting, 3);
  clock.advance(99);
  await tick();
  assert.deepEqual(order, [0, 1, 2], 'one token takes 100 ms at 10 qps');
  clock.advance(1);
  await tick();
  assert.deepEqual(order, [0, 1, 2, 3]);
  clock.advance(200);
  await tick();
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  assert.equal(b.waiting, 0);
});

test('tokens refill up to the burst while idle', async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ qps: 5, burst: 2 }, clock);
  await b.acquire();
  await b.acquire();
  clock.advance(10_000);
  let passed = 0;
  for (let i = 0; i < 3; i++) void b.acquire().then(() => passed++);
  await tick();
  assert.equal(passed, 2, 'never more than the burst, however long the pause');
});

test('an aborted waiter leaves the line and rejects; qps 0 means no limit', async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ qps: 1, burst: 1 }, clock);
  await b.acquire();
  const abort = new AbortController();
  const waiting = b.acquire(abort.signal);
  const next = b.acquire();
  abort.abort(new Error('shutdown'));
  await assert.rejects(waiting, /shutdown/);
  assert.equal(b.waiting, 1);
  clock.advance(1000);
  await next;
  const free = new TokenBucket({ qps: 0, burst: 1 }, clock);
  for (let i = 0; i < 100; i++) await free.acquire();
});

test('requests made for low-priority work wait behind the others', async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ qps: 10, burst: 1 }, clock);
  await b.acquire();
  const order: string[] = [];
  for (const n of ['new-1', 'new-2']) void requestPriority.run('low', () => b.acquire()).then(() => order.push(n));
  void b.acquire().then(() => order.push('in-flight'));
  clock.advance(100);
  await tick();
  assert.deepEqual(order, ['in-flight'], 'the normal request overtakes the low ones that came first');
  clock.advance(200);
  await tick();
  assert.deepEqual(order, ['in-flight', 'new-1', 'new-2']);
});
