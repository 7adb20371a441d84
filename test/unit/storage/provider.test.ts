import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storageReport } from '../../../src/storage/provider.ts';
import type { SourceStatus } from '../../../src/storage/status.ts';

function st(p: Partial<SourceStatus>): SourceStatus {
  return {
    role: 'source', phase: 'Copying', mode: 'async', synced: false, reason: 'Copying', message: 'pass 2', changeSource: 'qemu-dirty-bitmap', codec: 'relay',
    bytesTotal: 100, bytesSent: 60, bytesOverWan: 20, pass: 2, remainingDirtyBytes: 10, passes: [],
    link: { up: true, reconnects: 0, resentBytes: 0, resumeSkippedBytes: 0, unconfirmedBytes: 0 }, writeLatency: {}, startedAt: '', ...p,
  };
}

test('no agent: Unavailable', () => {
  assert.equal(storageReport([]).state, 'Unavailable');
});

test('Ready only when every disk is synced', () => {
  const r = storageReport([st({ synced: true, mode: 'sync', phase: 'Synchronous', remainingDirtyBytes: 0 }), st({})]);
  assert.equal(r.state, 'Progressing');
  assert.match(r.message, /async pass 2, 10 bytes dirty/);
  const ok = storageReport([st({ synced: true, mode: 'sync', phase: 'Synchronous', remainingDirtyBytes: 0 })]);
  assert.equal(ok.state, 'Ready');
  assert.equal(ok.progress?.percent, 100);
  assert.equal(ok.progress?.bytesOverWan, 20);
  assert.equal(ok.progress?.reductionRatio, 0.333);
});

test('a failed agent fails the step with its reason', () => {
  const r = storageReport([st({ phase: 'Failed', reason: 'TargetWriteFailed', message: 'errno 28' })]);
  assert.equal(r.state, 'Failed');
  assert.equal(r.reason, 'TargetWriteFailed');
});

test('progress sums disks', () => {
  const r = storageReport([st({}), st({ bytesTotal: 300, bytesSent: 40, bytesOverWan: 30 })]);
  assert.equal(r.progress?.bytesTotal, 400);
  assert.equal(r.progress?.bytesSent, 100);
  assert.equal(r.progress?.bytesOverWan, 50);
});
