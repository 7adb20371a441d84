// The live relays' start-up warm-up doubles as a self-test: a synthetic QEMU stream (pages of
// every kind, re-sent in later rounds: cache hits, deltas, zero pages) through the encoder at
// zstd-1 and back through the decoder, byte-exact, in a cache of its own.
import assert from 'node:assert/strict';
import test from 'node:test';
import { warmUpCodec } from '../../../src/relay/tools/warm-up.ts';

test('the warm-up encodes and decodes a synthetic stream byte-exact and reports its size', () => {
  const r = warmUpCodec(4 << 20);
  assert.ok(r.streamBytes > 1 << 20, `a stream of ${r.streamBytes} bytes`);
  assert.ok(r.cpuMs > 0);
});
