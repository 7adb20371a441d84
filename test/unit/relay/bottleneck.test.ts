// The sender's link-or-CPU verdict: credit starvation (the far side has not written the data yet)
// counts as the link being the bottleneck only where it can be the link: always when the link's
// capacity is unknown (a slow WAN hides behind the kernel's send buffer), and on a link the probe
// found fast only while the stream uses at least half of it. Below that, on a fast link, the
// receiving side is what is slow, and neither the verdict nor the learnt capacity may say "link".
import assert from 'node:assert/strict';
import test from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BottleneckMonitor, type Verdict } from '../../../src/relay/transport/bottleneck.ts';
import { StreamHashPool } from '../../../src/relay/transport/stream-hash.ts';

/** One ~100 ms window: `wireBytes` sent, every sample starved (or not). */
async function windowOf(m: BottleneckMonitor, wireBytes: number, starved: boolean): Promise<Verdict> {
  m.addWire(wireBytes);
  for (;;) {
    const v = m.sample({ linkBacklogged: false, creditStarved: starved, compressionQueued: false });
    if (v) return v;
    await sleep(10);
  }
}

test('credit starvation is the link on an unprobed link, not on a fast link used below half its rate', async () => {
  const unknown = new BottleneckMonitor();
  assert.equal((await windowOf(unknown, 1e6, true)).linkBusy, true, 'no capacity known: starvation is the link');

  const fast = new BottleneckMonitor();
  fast.assumeCapacity(113_000); // a probed ~905 Mbit/s, in bytes/ms
  const slowSide = await windowOf(fast, 1e6, true); // ~10 MB/s in a 100 ms window: far below the link
  assert.equal(slowSide.linkBusy, false, 'a fast link at a tenth of its rate is not the bottleneck');
  assert.equal(slowSide.linkCapacity, 113_000, 'and its capacity is not learnt down from such a window');
  const full = await windowOf(fast, 20e6, true); // ~200 MB/s in 100 ms (still over half the link were the window 3x longer)
  assert.equal(full.linkBusy, true, 'starved near the link\'s rate: the link');
  assert.equal((await windowOf(fast, 1e6, false)).linkBusy, false, 'neither starved nor near the rate');
});

test('main-thread time of the test bed\'s stream check does not count as the relay\'s CPU', () => {
  // Two monitors watch the same busy main thread: every ~100 ms window is spent hashing in place,
  // as `--hash-streams` does. For one of them that hashing is the excluded check.
  const pool = new StreamHashPool();
  const h = pool.open();
  const plain = new BottleneckMonitor();
  const checked = new BottleneckMonitor({ excluded: () => pool.spent() });
  const block = Buffer.alloc(1 << 20, 7);
  const sample = { linkBacklogged: false, creditStarved: false, compressionQueued: false };
  let busy: Verdict | undefined;
  let excused: Verdict | undefined;
  for (let i = 0; (!busy || !excused) && i < 100_000; i++) {
    h.update(block);
    busy ??= plain.sample(sample);
    excused ??= checked.sample(sample);
  }
  assert.ok(busy && excused, 'both monitors gave a verdict');
  assert.equal(busy.cpuBusy, true, 'a loop that never idles is CPU-bound');
  assert.equal(excused.cpuBusy, false, 'unless what keeps it busy is the excluded check');
});
