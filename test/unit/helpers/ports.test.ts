// The free-port source's claims exclude other test processes: a port this process claimed is
// refused to another live process, and the claim of a dead process is taken over.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLAIMS_DIR, claimPort, freePort } from '../../helpers/ports.ts';

const portsModule = fileURLToPath(new URL('../../helpers/ports.ts', import.meta.url));

/** claimPort(port) in a separate node process. */
function claimElsewhere(port: number): boolean {
  const script = `import { claimPort } from ${JSON.stringify(portsModule)}; console.log(claimPort(${port}));`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim() === 'true';
}

/** A pid that certainly belongs to no live process: that of a child that has exited. */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).trim());
}

test('a port handed out here is refused to another test process, and never handed out twice here', async () => {
  const port = await freePort();
  assert.equal(claimElsewhere(port), false);
  const more = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  assert.equal(new Set([port, ...more]).size, 21);
});

test('the claim of a dead process is taken over and removed', () => {
  const port = 19_999; // below the range freePort picks from, so no other test process races for it
  const stale = join(CLAIMS_DIR, `${port}.${deadPid()}`);
  mkdirSync(CLAIMS_DIR, { recursive: true });
  writeFileSync(stale, '');
  assert.equal(claimPort(port), true);
  assert.equal(existsSync(stale), false);
  // Once the claim is ours, another process is refused; the exited child's own claim went with it.
  assert.equal(claimElsewhere(port), false);
});
