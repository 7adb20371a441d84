import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../../src/link/keys.ts';
import { FileKeyStore, loadOrCreateKeys } from '../../../src/link/keystore.ts';

test('file key store: created 0600 on first start, stable afterwards, keeps the next key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-keystore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new FileKeyStore(join(dir, 'sub', 'key.json'));
  assert.equal(await store.load(), undefined);
  const first = await loadOrCreateKeys(store);
  assert.equal(statSync(store.path).mode & 0o777, 0o600);
  const again = await loadOrCreateKeys(store);
  assert.ok(again.current.equals(first.current));
  const next = generateKeyPair();
  await store.save({ current: first.current, next: next.privateKey });
  const loaded = await store.load();
  assert.equal(loaded?.next?.publicKey(), next.publicKey);
  assert.ok(readFileSync(store.path, 'utf8').includes(next.privateKey.reveal()), 'the store is the one place the key is written');
});
