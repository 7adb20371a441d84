import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setCondition, validReason } from '../../../src/api/conditions.ts';

const PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

test('reasons that break metav1.Condition\'s pattern are reduced to valid ones (a bad one fails every status write)', () => {
  assert.equal(validReason('LinkReady'), 'LinkReady');
  assert.equal(validReason('handshake failed: peer key'), 'handshakefailed:peerkey');
  assert.equal(validReason('404 Not-Found'), 'NotFound');
  assert.equal(validReason('Bad,'), 'Bad');
  for (const r of ['', '---', '123', 'ü', ':x', 'x'.repeat(2000)]) {
    const v = validReason(r);
    assert.match(v, PATTERN, JSON.stringify(r));
    assert.ok(v.length <= 1024);
  }
});

test('setCondition stores only valid reasons and bounded messages', () => {
  const now = new Date('2026-12-07T00:00:00Z');
  const [c] = setCondition(undefined, { type: 'LinkReady', status: 'False', reason: 'peer unreachable!', message: 'm'.repeat(40000) }, 1, now);
  assert.match(c!.reason, PATTERN);
  assert.equal(c!.message.length, 32768);
});
