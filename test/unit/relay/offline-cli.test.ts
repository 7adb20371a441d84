// `cloudnet relay encode|decode` on files: streamed through in pieces, byte-exact, and a file that
// fails in the middle of decoding (after its checks passed) leaves no output file behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { F, packBatch } from '../../../src/relay/codec/index.ts';
import { syntheticQemuStream } from '../../../src/relay/tools/index.ts';
import { runDecode, runEncode } from '../../../src/relay/tools/cli.ts';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'relay-cli-'));

test('encode and decode stream files through in pieces, byte-exact, one output per session', () => {
  const dir = tmp();
  try {
    const a = syntheticQemuStream({ seed: 5, pages: 700, rounds: 3 }); // > 1 MiB: several read pieces
    const b = syntheticQemuStream({ seed: 6, pages: 300, rounds: 2, contentSeed: 5 });
    fs.writeFileSync(path.join(dir, 'a'), a);
    fs.writeFileSync(path.join(dir, 'b'), b);
    assert.equal(runEncode([path.join(dir, 'a'), path.join(dir, 'b'), path.join(dir, 'f.cnr')], { cacheBytes: 8 << 20 }), 0);
    assert.equal(runDecode([path.join(dir, 'f.cnr'), path.join(dir, 'out')]), 0);
    assert.ok(fs.readFileSync(path.join(dir, 'out.1')).equals(a));
    assert.ok(fs.readFileSync(path.join(dir, 'out.2')).equals(b));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b', 'f.cnr', 'out.1', 'out.2']);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('a batch that fails to decode after the file checks passed: exit 1, no output file, no partial file', () => {
  const dir = tmp();
  try {
    // Every frame intact (CRC chain, FIN totals, END): only the second batch's ops are invalid.
    const w = new F.FrameWriter();
    const good = packBatch(Buffer.from([0x01, 0x03, 0x61, 0x62, 0x63]), 3, 0); // OP_RAW "abc"
    const bad = packBatch(Buffer.from([0xff]), 1, 0); // unknown op
    const file = Buffer.concat([
      F.FILE_MAGIC,
      w.json(F.F_HELLO, 0, { magic: 'cloudnet-relay', version: F.PROTOCOL_VERSION, cacheBytes: 1 << 20, role: 'file' }),
      w.json(F.F_OPEN, 1, { mode: 'generic' }),
      w.frame(F.F_DATA, 1, good),
      w.frame(F.F_DATA, 1, bad),
      w.frame(F.F_FIN, 1, F.totalsPayload({ batches: 2, bytes: 4 })),
      w.frame(F.F_END, 0, F.fileTotalsPayload({ frames: 5, sessions: 1 })),
    ]);
    fs.writeFileSync(path.join(dir, 'f.cnr'), file);
    assert.equal(runDecode([path.join(dir, 'f.cnr'), path.join(dir, 'out')]), 1);
    assert.deepEqual(fs.readdirSync(dir), ['f.cnr']);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
