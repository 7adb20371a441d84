// A migration's relay settings (WanMigration spec.relay: dedup, deltaPages, cacheSizeMiB) reach
// the encoder as options: each one changes which techniques the session uses, never the bytes
// the receiver reproduces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createContext, packBatch, SessionDecoder, SessionEncoder, T_DEDUP, T_DELTA, T_GENERIC_DEDUP, unpackBatch, type EncoderOptions,
} from '../../../src/relay/codec/index.ts';
import { syntheticQemuStream } from '../../../src/relay/tools/index.ts';

/** Encodes `inputs` one after the other over one shared cache; returns each session's stats. */
function run(inputs: Buffer[], opts: EncoderOptions, cacheBytes = 16 << 20) {
  const tx = createContext(cacheBytes);
  const rx = createContext(cacheBytes);
  return inputs.map((input) => {
    const dec = new SessionDecoder(rx);
    const out: Buffer[] = [];
    const enc = new SessionEncoder(tx, (b) => {
      const { ops, rawLen, inserts } = unpackBatch(packBatch(b.ops, b.rawLen, 1, undefined, b.inserts));
      out.push(dec.decode(ops, rawLen, undefined, inserts));
    }, opts);
    for (let off = 0; off < input.length; off += 50_000) enc.write(input.subarray(off, off + 50_000));
    enc.end();
    assert.ok(Buffer.concat(out).equals(input), 'byte-exact whatever the settings');
    return { stats: enc.stats, cacheUsed: tx.cache.size };
  });
}

const vm1 = syntheticQemuStream({ seed: 5, pages: 800, rounds: 4 });
const vm2 = syntheticQemuStream({ seed: 6, pages: 800, rounds: 2, contentSeed: 5 });

test('defaults: references and deltas both used', () => {
  const [a, b] = run([vm1, vm2], {});
  assert.ok(a.stats.count[T_DELTA] > 0 && a.stats.count[T_DEDUP] > 0);
  assert.ok(b.stats.count[T_DEDUP] > 400, `the second VM is mostly references: ${b.stats.count[T_DEDUP]}`);
});

test('dedup off: no cache or seed references, deltas still', () => {
  const [a, b] = run([vm1, vm2], { dedup: false });
  for (const s of [a.stats, b.stats]) assert.equal(s.count[T_DEDUP] + s.count[T_GENERIC_DEDUP], 0);
  assert.ok(a.stats.count[T_DELTA] > 0);
});

test('deltaPages off: no deltas, references still', () => {
  const [a] = run([vm1], { deltas: false });
  assert.equal(a.stats.count[T_DELTA], 0);
  assert.ok(a.stats.count[T_DEDUP] > 0);
});

test('a cache window smaller than the shared cache finds less of the other VM', () => {
  const whole = run([vm1, vm2], {})[1].stats.count[T_DEDUP];
  // 64 entries: only content inserted in the last 64 pages may be referenced.
  const small = run([vm1, vm2], { cacheWindow: 64 })[1].stats.count[T_DEDUP];
  assert.ok(small < whole / 4, `window 64: ${small} references, whole cache: ${whole}`);
});

test('cache window 0: no parsing, no cache, raw ops only', () => {
  const [a] = run([vm1], { cacheWindow: 0 });
  assert.equal(a.stats.mode, 'generic');
  assert.equal(a.cacheUsed, 0, 'nothing inserted into the shared cache');
  assert.equal(a.stats.cacheLookups, 0);
});
