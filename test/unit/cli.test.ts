import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

test('cli prints its version', () => {
  const out = execFileSync(process.execPath, ['src/cli.ts', 'version'], { encoding: 'utf8' });
  assert.match(out, /^cloudnet \d+\.\d+\.\d+/);
});
