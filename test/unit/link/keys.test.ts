import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import winston from 'winston';
import { generateKeyPair, isWgKey, publicKeyOf, WgPrivateKey } from '../../../src/link/keys.ts';
import { logger, rootLogger } from '../../../src/util/log.ts';

function wg(args: string[], input?: string): string {
  try {
    return execFileSync('wg', args, { input, encoding: 'utf8' }).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('wg not found: install the Debian package wireguard-tools (hack/setup.sh does)');
    throw err;
  }
}

test('generated keys are WireGuard base64 keys and `wg pubkey` agrees on the public half', () => {
  for (let i = 0; i < 5; i++) {
    const kp = generateKeyPair();
    assert.ok(isWgKey(kp.privateKey.reveal()));
    assert.ok(isWgKey(kp.publicKey));
    assert.equal(wg(['pubkey'], `${kp.privateKey.reveal()}\n`), kp.publicKey);
  }
});

test('a key from `wg genkey` gives the same public key as `wg pubkey`', () => {
  const sk = wg(['genkey']);
  assert.equal(publicKeyOf(new WgPrivateKey(sk)), wg(['pubkey'], `${sk}\n`));
});

test('malformed keys are rejected', () => {
  assert.equal(isWgKey('abc'), false);
  assert.equal(isWgKey(`${'A'.repeat(43)}`), false);
  assert.throws(() => new WgPrivateKey('not a key'));
});

test('a private key never shows up in JSON, string or inspect output', () => {
  const kp = generateKeyPair();
  const secret = kp.privateKey.reveal();
  const holder = { nested: { privateKey: kp.privateKey }, list: [kp.privateKey] };
  for (const text of [JSON.stringify(holder), String(kp.privateKey), `${kp.privateKey}`, inspect(holder, { depth: 5 })]) {
    assert.ok(!text.includes(secret), text);
    assert.ok(text.includes('[redacted]'), text);
  }
});

test('logging an object carrying the key prints [redacted], never the key', async () => {
  const kp = generateKeyPair();
  const secret = kp.privateKey.reveal();
  let out = '';
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { out += chunk.toString(); cb(); } });
  const transport = new winston.transports.Stream({ stream: sink, level: 'debug' });
  const others = [...rootLogger.transports];
  for (const t of others) t.silent = true; // keep the test's output clean; `out` sees everything
  rootLogger.add(transport);
  const prevLevel = rootLogger.level;
  rootLogger.level = 'debug';
  try {
    const log = logger('keys-test');
    log.info('raw string under a secret-named field', { privateKey: secret });
    log.info('key object nested', { keys: { current: kp.privateKey }, publicKey: kp.publicKey });
    await new Promise((r) => setImmediate(r));
  } finally {
    rootLogger.remove(transport);
    for (const t of others) t.silent = false;
    rootLogger.level = prevLevel;
  }
  assert.ok(out.includes('[redacted]'));
  assert.ok(out.includes(kp.publicKey), 'public keys may be logged');
  assert.ok(!out.includes(secret), out);
});
