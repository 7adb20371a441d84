// A real QEMU 7.2 migration stream that carries a disk with block migration (capability `block`,
// as the KubeVirt stand-in sends disks) through the relay's encoder and decoder: the output must
// be byte-exact, and the QEVM parser must stay in sync through the "block" sections (RAM pages
// keep their dedup/deltas, pre-copy rounds are counted, disk blocks go through the page path).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { formatMigration } from '../../src/qemu/migrate.ts';
import { T_DEDUP, T_GENERIC_DEDUP, T_GENERIC_LITERAL, T_LITERAL } from '../../src/relay/codec/index.ts';
import { decodeStreams, encodeStreams, plainZstdSize } from '../../src/relay/tools/index.ts';
import { createGuestLab } from '../env/qemu.ts';
import { recordBlockStream } from './block-stream.ts';

test('real block-migration stream: relay codec stays in sync and is byte-exact', { timeout: 180_000 }, async (t) => {
  const lab = createGuestLab('cloudnet-relay-block-');
  t.after(() => lab.destroy());
  const { path, result } = await recordBlockStream(lab, 'blk', { memoryMiB: 128, diskMiB: 4 });
  console.log(`[relay-block] ${formatMigration(result)} stream=${(result.fileBytes / 1e6).toFixed(1)} MB`);
  const input = fs.readFileSync(path);
  const disk = Buffer.from('\x05disk0', 'latin1');
  assert.ok(input.indexOf(Buffer.from('\x05block', 'latin1')) > 0 && input.indexOf(disk) > 0, 'the stream carries a "block" section with disk0 blocks');

  // Odd-sized writes, so records straddle write boundaries everywhere.
  const enc = encodeStreams([input], { cacheBytes: 64 << 20, interleave: 10007 });
  const stats = enc.stats[0];
  const wire = enc.out.reduce((a, b) => a + b.length, 0);
  const dec = decodeStreams(Buffer.concat(enc.out));
  assert.ok(Buffer.concat(dec.outputs[0]).equals(input), 'decoded stream is byte-exact');

  const zstd3 = plainZstdSize(input, 3);
  const generic = stats.rawBytes[T_GENERIC_LITERAL] + stats.rawBytes[T_GENERIC_DEDUP];
  console.log(`[relay-block] input ${input.length} wire ${wire} (${(100 * wire / input.length).toFixed(1)}%), zstd-3 ${zstd3}, rounds ${stats.rounds.length}, generic ${generic}`);
  assert.equal(stats.mode, 'qevm');
  assert.equal(stats.syncLost, '', 'parser kept its sync through the block sections');
  assert.ok(stats.rounds.length > 1, `pre-copy rounds counted: ${stats.rounds.length}`);
  // Only the device state after the last iterable section is opaque (about 0.1 MB).
  assert.ok(generic < 1 << 20, `generic bytes ${generic}`);
  // At least the 4 MiB bulk copy of the disk went through the page path.
  assert.ok(stats.rawBytes[T_DEDUP] + stats.rawBytes[T_LITERAL] > 4 << 20);
  assert.ok(wire < zstd3, `relay ${wire} bytes, plain zstd -3 ${zstd3}`);
});
