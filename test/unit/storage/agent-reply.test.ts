// What the operator keeps of an agent's reply: typed fields only, never its text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentReplyError, parseJson, parseSourceStatus, parseVerification } from '../../../src/storage/agent-reply.ts';

const good = {
  role: 'source', phase: 'Copying', mode: 'async', synced: false, reason: 'Copying', message: 'pass 2: 4096 dirty bytes',
  changeSource: 'hash-scan', codec: 'relay', bytesTotal: 1 << 20, bytesSent: 4096, bytesOverWan: 100, pass: 2, remainingDirtyBytes: 4096,
  passes: [{ pass: 1, dirtyBytes: 1 << 20, sentBytes: 4096, wireBytes: 100, ms: 5 }],
  link: { up: true, reconnects: 1, resentBytes: 0, resumeSkippedBytes: 0, unconfirmedBytes: 0 }, writeLatency: { asyncAvgUs: 3 }, startedAt: '2026-12-06T10:00:00Z',
};

test('a well-formed status keeps its numbers and enums, but not its message', () => {
  const s = parseSourceStatus(good);
  assert.equal(s.phase, 'Copying');
  assert.equal(s.bytesTotal, 1 << 20);
  assert.equal(s.message, '');
  assert.equal(s.link.reconnects, 1);
  assert.equal(s.passes.length, 1);
  assert.equal(s.startedAt, '2026-12-06T10:00:00.000Z');
});

test('unknown reasons become AgentReported; extra fields are dropped', () => {
  const s = parseSourceStatus({ ...good, reason: 'Visit http://evil.example/', extra: 'x'.repeat(1000) });
  assert.equal(s.reason, 'AgentReported');
  assert.ok(!('extra' in s));
  assert.ok(!JSON.stringify(s).includes('evil'));
});

test('bad types, unknown phases and impossible numbers are refused', () => {
  for (const bad of [null, [], 'x', { ...good, phase: 'Hacked' }, { ...good, bytesTotal: -1 }, { ...good, bytesSent: 'many' }, { ...good, pass: Infinity }, { ...good, synced: 'yes' }]) {
    assert.throws(() => parseSourceStatus(bad), AgentReplyError);
  }
});

test('a verification is two SHA-256 digests', () => {
  const h = 'a'.repeat(64);
  assert.deepEqual(parseVerification({ sourceSha256: h, targetSha256: h, match: false, at: 'never', quiesced: true }), { sourceSha256: h, targetSha256: h, match: true, at: '', quiesced: true });
  assert.throws(() => parseVerification({ sourceSha256: '<b>', targetSha256: h, quiesced: true }), AgentReplyError);
  assert.throws(() => parseJson(Buffer.from('<html>secret</html>')), (e: Error) => e instanceof AgentReplyError && !e.message.includes('secret'));
});
