// Informer state machine on a scripted ListWatcher: resume from the last resourceVersion after a
// watch ends, backoff after errors, relist on 410 with a diff (missed deletes are delivered).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate } from 'node:timers/promises';
import { Informer, type ListWatcher } from '../../../src/kube/informer.ts';
import { RestartBackoff } from '../../../src/kube/backoff.ts';
import { FakeClock } from '../../../src/kube/clock.ts';
import { KubeApiError, type KubeObject, type WatchEvent } from '../../../src/kube/rest.ts';
import { waitFor } from '../../helpers/poll.ts';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

type WatchStep = { events: WatchEvent[]; end: 'close' | Error };

function scripted(lists: KubeObject[][], watches: WatchStep[]) {
  const watchRVs: string[] = [];
  let listCalls = 0;
  const lw: ListWatcher<KubeObject> = {
    list: async () => {
      const items = lists[Math.min(listCalls++, lists.length - 1)];
      const rv = String(Math.max(0, ...items.map((i) => Number(i.metadata?.resourceVersion))));
      return { items, metadata: { resourceVersion: rv } };
    },
    watch: async (rv, onEvent, signal) => {
      watchRVs.push(rv);
      const step = watches.shift();
      if (!step) {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        return;
      }
      await new Promise((r) => setTimeout(r, 1));
      for (const e of step.events) onEvent(e);
      if (step.end instanceof Error) throw step.end;
    },
  };
  return { lw, watchRVs, listCalls: () => listCalls };
}

/** What the informer's handlers deliver, as `add:a`, `update:a`, `delete:a`. */
function recordEvents(inf: Informer<KubeObject>): string[] {
  const seen: string[] = [];
  inf.addEventHandler({
    onAdd: (o) => seen.push(`add:${o.metadata?.name}`),
    onUpdate: (_o, n) => seen.push(`update:${n.metadata?.name}`),
    onDelete: (o) => seen.push(`delete:${o.metadata?.name}`),
  });
  return seen;
}

test('a closed watch resumes from the last seen resourceVersion (bookmarks included), without relisting', async () => {
  const s = scripted([[obj('a', '5')]], [
    { events: [{ type: 'MODIFIED', object: obj('a', '7') }], end: 'close' },
    { events: [{ type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } }], end: 'close' },
  ]);
  const inf = new Informer(s.lw, { backoff: new RestartBackoff(1, 2) });
  inf.start();
  try {
    await waitFor(() => s.watchRVs.length === 3, { what: 'third watch' });
    assert.deepEqual(s.watchRVs, ['5', '7', '9']);
    assert.equal(s.listCalls(), 1);
    assert.equal(inf.get('ns/a')?.metadata?.resourceVersion, '7');
  } finally {
    await inf.stop();
  }
});

test('errors back off and retry the watch from the same RV; 410 relists and delivers missed deletes', async () => {
  const s = scripted([[obj('a', '5'), obj('b', '6')], [obj('a', '8'), obj('c', '9')]], [
    { events: [], end: new Error('connection reset') },
    { events: [{ type: 'ERROR', object: { code: 410, reason: 'Expired', message: 'too old resource version' } as unknown as KubeObject }], end: 'close' },
  ]);
  // Backoff on a FakeClock without jitter: the retry must wait exactly the initial 20 ms.
  const clock = new FakeClock();
  const inf = new Informer(s.lw, { backoff: new RestartBackoff(20, 100, () => 0), clock });
  const seen = recordEvents(inf);
  inf.start();
  try {
    await waitFor(() => inf.stats.errors === 1 && clock.pendingTimers() === 1, { what: 'the backoff after the error' });
    clock.advance(19);
    await setImmediate();
    assert.equal(s.watchRVs.length, 1, 'no retry before the initial backoff');
    clock.advance(1);
    await waitFor(() => s.listCalls() === 2 && s.watchRVs.length === 3, { what: 'relist' });
    assert.deepEqual(s.watchRVs, ['6', '6', '9']);
    assert.equal(inf.stats.errors, 1);
    assert.equal(inf.stats.goneRelists, 1);
    assert.deepEqual(seen, ['add:a', 'add:b', 'delete:b', 'update:a', 'add:c']);
    assert.deepEqual(inf.keys().sort(), ['ns/a', 'ns/c']);
  } finally {
    await inf.stop();
  }
});

test('list failures retry with backoff until the first list succeeds; waitForSync honours abort', async () => {
  let fails = 3;
  const lw: ListWatcher<KubeObject> = {
    list: async () => {
      if (fails-- > 0) throw new KubeApiError(503, 'ServiceUnavailable', 'not yet');
      return { items: [obj('a', '1')], metadata: { resourceVersion: '1' } };
    },
    watch: (_rv, _on, signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
  };
  const inf = new Informer(lw, { backoff: new RestartBackoff(1, 5) });
  assert.equal(await inf.waitForSync(AbortSignal.timeout(5)), false);
  inf.start();
  try {
    assert.equal(await inf.waitForSync(AbortSignal.timeout(5000)), true);
    assert.equal(inf.stats.errors, 3);
    const late: string[] = [];
    inf.addEventHandler({ onAdd: (o) => late.push(o.metadata?.name ?? '') });
    assert.deepEqual(late, ['a'], 'late handlers get the cache replayed as adds');
  } finally {
    await inf.stop();
  }
});
