import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workqueue } from '../../../src/kube/workqueue.ts';
import { FakeClock } from '../../../src/kube/clock.ts';
import { ItemExponentialRateLimiter } from '../../../src/kube/backoff.ts';

function newQueue() {
  const clock = new FakeClock();
  const q = new Workqueue({ name: 't', clock });
  return { clock, q };
}

/** Resolves the pending microtasks so that promise-based getters observe queue changes. */
const tick = () => new Promise((r) => setImmediate(r));

test('deduplicates keys that are waiting', async () => {
  const { q } = newQueue();
  q.add('a');
  q.add('b');
  q.add('a');
  assert.equal(q.len(), 2);
  assert.equal(await q.get(), 'a');
  assert.equal(await q.get(), 'b');
  assert.equal(q.len(), 0);
});

test('a key is processed by one worker at a time; re-added while processing it runs again after done', async () => {
  const { q } = newQueue();
  q.add('a');
  const first = await q.get();
  assert.equal(first, 'a');
  q.add('a'); // dirty while processing
  q.add('a'); // still one
  assert.equal(q.len(), 0, 'not handed to a second worker while in flight');
  let second: string | undefined;
  void q.get().then((k) => (second = k));
  await tick();
  assert.equal(second, undefined);
  q.done('a');
  await tick();
  assert.equal(second, 'a');
  q.done('a');
  assert.equal(q.len(), 0);
  assert.equal(q.inFlight(), 0);
});

test('done without a re-add does not re-queue', async () => {
  const { q } = newQueue();
  q.add('a');
  await q.get();
  q.done('a');
  assert.equal(q.len(), 0);
});

test('waiting getters are served in order and each key goes to one getter', async () => {
  const { q } = newQueue();
  const got: Array<string | undefined> = [];
  void q.get().then((k) => got.push(k));
  void q.get().then((k) => got.push(k));
  q.add('x');
  q.add('y');
  q.add('x');
  await tick();
  assert.deepEqual(got.sort(), ['x', 'y']);
});

test('addAfter delays, earliest time wins, and a plain add is not blocked by a pending delay', async () => {
  const { q, clock } = newQueue();
  q.addAfter('a', 1000);
  q.addAfter('a', 500);
  q.addAfter('a', 2000);
  assert.equal(q.len(), 0);
  assert.equal(q.delayed(), 1);
  clock.advance(499);
  assert.equal(q.len(), 0);
  clock.advance(1);
  assert.equal(q.len(), 1);
  assert.equal(q.delayed(), 0);
  clock.advance(5000);
  assert.equal(q.len(), 1, 'the later timers were replaced, not duplicated');
  q.addAfter('b', 0);
  assert.equal(q.len(), 2, 'non-positive delay adds immediately');
});

test('rate-limited backoff grows 5ms, 10ms, 20ms ... and caps at 1000s; forget resets', async () => {
  const { q, clock } = newQueue();
  const expected = [5, 10, 20, 40, 80, 160, 320];
  for (const ms of expected) {
    q.addRateLimited('k');
    clock.advance(ms - 1);
    assert.equal(q.len(), 0, `not before ${ms}ms`);
    clock.advance(1);
    assert.equal(q.len(), 1, `due at ${ms}ms`);
    // The worker takes it and finishes.
    q.done((await q.get())!);
  }
  assert.equal(q.numRequeues('k'), expected.length);
  q.forget('k');
  assert.equal(q.numRequeues('k'), 0);
});

test('the rate limiter caps at 1000 s even after very many failures', () => {
  const rl = new ItemExponentialRateLimiter();
  const delays: number[] = [];
  for (let i = 0; i < 2000; i++) delays.push(rl.when('k'));
  assert.equal(delays[0], 5);
  assert.equal(delays[1], 10);
  assert.equal(delays[17], 5 * 2 ** 17); // 655.36 s
  assert.equal(delays[18], 1_000_000); // capped
  assert.equal(Math.max(...delays), 1_000_000);
  assert.ok(delays.every(Number.isFinite));
  assert.equal(rl.when('other'), 5, 'backoff is per key');
});

test('shutDown resolves waiting getters with undefined and refuses new work', async () => {
  const { q, clock } = newQueue();
  const p = q.get();
  q.addAfter('later', 100);
  q.shutDown();
  assert.equal(await p, undefined);
  q.add('a');
  assert.equal(q.len(), 0);
  assert.equal(await q.get(), undefined);
  clock.advance(1000);
  assert.equal(q.len(), 0, 'delayed adds are dropped on shutdown');
  assert.equal(clock.pendingTimers(), 0);
});

test('shutDownWithDrain waits for in-flight items', async () => {
  const { q } = newQueue();
  q.add('a');
  q.add('b');
  await q.get();
  let drained: boolean | undefined;
  void q.shutDownWithDrain().then((d) => (drained = d));
  await tick();
  assert.equal(drained, undefined);
  assert.equal(await q.get(), undefined, 'queued items are not handed out after shutdown');
  q.add('a'); // dirty add during drain is ignored
  q.done('a');
  await tick();
  assert.equal(drained, true);
  assert.equal(q.len(), 1, 'b stays queued, never processed');
});

test('shutDownWithDrain gives up after its timeout', async () => {
  const { q, clock } = newQueue();
  q.add('a');
  await q.get();
  let drained: boolean | undefined;
  void q.shutDownWithDrain(1000).then((d) => (drained = d));
  clock.advance(999);
  await tick();
  assert.equal(drained, undefined);
  clock.advance(1);
  await tick();
  assert.equal(drained, false);
});

test('metrics hooks see adds, depth, latency, work duration and retries', async () => {
  const clock = new FakeClock();
  const seen = { adds: 0, retries: 0, depth: [] as number[], latency: [] as number[], work: [] as number[] };
  const q = new Workqueue({
    clock,
    metrics: {
      add: () => seen.adds++,
      retry: () => seen.retries++,
      depth: (n) => seen.depth.push(n),
      queueLatency: (s) => seen.latency.push(s),
      workDuration: (s) => seen.work.push(s),
    },
  });
  q.add('a');
  q.add('a');
  clock.advance(250);
  const k = await q.get();
  clock.advance(1500);
  assert.equal(q.longestRunningProcessorSeconds(), 1.5);
  assert.equal(q.unfinishedWorkSeconds(), 1.5);
  q.done(k!);
  q.addRateLimited('b');
  assert.equal(seen.adds, 1);
  assert.equal(seen.retries, 1);
  assert.deepEqual(seen.latency, [0.25]);
  assert.deepEqual(seen.work, [1.5]);
  assert.deepEqual(seen.depth, [1, 0]);
  assert.equal(q.longestRunningProcessorSeconds(), 0);
});

test('N concurrent workers never process the same key concurrently', async () => {
  const q = new Workqueue();
  const active = new Set<string>();
  let maxParallel = 0;
  let processed = 0;
  let running = 0;
  const worker = async () => {
    for (;;) {
      const k = await q.get();
      if (k === undefined) return;
      assert.ok(!active.has(k), `key ${k} processed twice at once`);
      active.add(k);
      running++;
      maxParallel = Math.max(maxParallel, running);
      await new Promise((r) => setTimeout(r, 1));
      if (Math.random() < 0.3) q.add(k);
      active.delete(k);
      running--;
      processed++;
      q.done(k);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  for (let i = 0; i < 200; i++) q.add(`k${i % 7}`);
  while (q.len() > 0 || q.inFlight() > 0) await new Promise((r) => setTimeout(r, 5));
  await q.shutDownWithDrain();
  await Promise.all(workers);
  assert.ok(processed >= 7);
  assert.ok(maxParallel > 1, 'workers ran in parallel');
});

test('low-priority keys wait behind normal ones; a normal add moves a waiting low key up', async () => {
  const { q } = newQueue();
  q.add('new-1', { low: true });
  q.add('new-2', { low: true });
  q.add('changed');
  q.add('new-3', { low: true });
  q.add('new-2'); // a change of new-2 arrives while it waits
  assert.equal(q.len(), 4);
  const got: string[] = [];
  for (let i = 0; i < 4; i++) { const k = (await q.get())!; got.push(k); q.done(k); }
  assert.deepEqual(got, ['changed', 'new-2', 'new-1', 'new-3']);
  assert.equal(q.len(), 0);
});

test('a key re-added low while in flight keeps a normal re-add', async () => {
  const { q } = newQueue();
  q.add('a');
  await q.get();
  q.add('a');
  q.add('a', { low: true });
  q.add('b', { low: true });
  q.done('a');
  assert.equal(await q.get(), 'a', 'normal priority from the first re-add');
});

test('maxLowInFlight keeps workers free for normal keys; a finished low key lets the next one go', async () => {
  const q = new Workqueue({ name: 't', clock: new FakeClock(), maxLowInFlight: 1 });
  q.add('new-1', { low: true });
  q.add('new-2', { low: true });
  assert.equal(await q.get(), 'new-1');
  let second: string | undefined;
  void q.get().then((k) => (second = k));
  await tick();
  assert.equal(second, undefined, 'the low slot is taken: the worker waits');
  q.add('changed');
  await tick();
  assert.equal(second, 'changed', 'a normal key goes to the waiting worker at once');
  let third: string | undefined;
  void q.get().then((k) => (third = k));
  await tick();
  assert.equal(third, undefined);
  q.done('new-1');
  await tick();
  assert.equal(third, 'new-2', 'the freed low slot goes to the next low key');
});
