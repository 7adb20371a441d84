// `cloudnet relay`'s numeric flags are checked before anything starts: a mistyped level or size is
// a clear error naming the flag, with no warm-up, no listener and no output file. (A cache of 0 MiB
// used to encode a file that its own decoder then refused; a level of "abc" went on as NaN.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { parseLevel, run } from '../../../src/relay/cli.ts';

test('--level: auto or a whole zstd level 0..19', () => {
  assert.equal(parseLevel(undefined), 'auto');
  assert.equal(parseLevel('auto'), 'auto');
  assert.equal(parseLevel('0'), 0);
  assert.equal(parseLevel('19'), 19);
  for (const bad of ['abc', '', '-3', '2.5', '20', '99', 'NaN']) assert.throws(() => parseLevel(bad), /--level .*auto, or a zstd level from 0/, bad);
});

test('the live relays refuse bad numbers with the flag named', async () => {
  const base = ['--listen', '127.0.0.1:0/x', '--peer', '127.0.0.1:1', '--plain-inside-wireguard'];
  const cases: [string[], RegExp][] = [
    [['--cache-mb', '0'], /--cache-mb 0: a number of MiB, at least 1/],
    [['--cache-mb', 'abc'], /--cache-mb abc/],
    [['--level', 'fast'], /--level fast/],
    [['--window-mb', '0'], /--window-mb 0: a number of MiB, at least 0.25/],
    [['--bypass-above-mbit', 'lots'], /--bypass-above-mbit lots/],
    [['--hash-streams', '--hash-streams-buffer-mb=-1'], /--hash-streams-buffer-mb -1: a number of MiB, at least 0/],
    [['--hash-streams-buffer-mb', '64'], /--hash-streams-buffer-mb needs --hash-streams/],
  ];
  for (const [flags, message] of cases) await assert.rejects(run(['send', ...base, ...flags]), message);
  await assert.rejects(run(['receive', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:1', '--plain-inside-wireguard', '--seed-mb', 'x']), /--seed-mb x/);
});

test('encode with a cache of 0 MiB fails at once and writes no file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-flags-'));
  try {
    fs.writeFileSync(path.join(dir, 'in'), Buffer.alloc(4096, 1));
    await assert.rejects(run(['encode', path.join(dir, 'in'), path.join(dir, 'out.cnr'), '--cache-mb', '0']), /--cache-mb 0/);
    assert.deepEqual(fs.readdirSync(dir), ['in']);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
