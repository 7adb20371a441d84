// The operator's side of the pre-copy: the step report is built from parsed agent statuses, and
// the provider contacts only the addresses of agents the launcher started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StorageRequest } from '../../../src/api/ports.ts';
import { AgentStoragePreCopy, storageReport, type AgentLauncher, type SourceAgentEndpoint } from '../../../src/storage/provider.ts';
import type { SourceStatus } from '../../../src/storage/status.ts';

function st(p: Partial<SourceStatus>): SourceStatus {
  return {
    role: 'source', phase: 'Copying', mode: 'async', synced: false, reason: 'Copying', message: '', changeSource: 'hash-scan', codec: 'relay',
    bytesTotal: 100, bytesSent: 60, bytesOverWan: 20, pass: 2, remainingDirtyBytes: 10, passes: [],
    link: { up: true, reconnects: 0, resentBytes: 0, resumeSkippedBytes: 0, unconfirmedBytes: 0 }, writeLatency: {}, startedAt: '', ...p,
  };
}

const agent = (disk: string): SourceAgentEndpoint => ({ disk, base: 'https://192.0.2.10:9471', pod: `ns/${disk}-src` });
const on = (disk: string, s: SourceStatus) => ({ agent: agent(disk), status: s });

test('Ready when every disk is synced, or converged by hash scans (KubeVirt mirrors the rest)', () => {
  const r = storageReport([on('a', st({ synced: true, mode: 'sync', phase: 'Synchronous', remainingDirtyBytes: 0 })), on('b', st({}))]);
  assert.equal(r.state, 'Progressing');
  assert.equal(r.message, 'disk b: async pass 2, 10 bytes dirty, 20 bytes over the WAN (Copying)');
  const ok = storageReport([on('a', st({ synced: true, mode: 'sync', phase: 'Synchronous', remainingDirtyBytes: 0 }))]);
  assert.equal(ok.state, 'Ready');
  assert.equal(ok.reason, 'Synced');
  assert.equal(ok.progress?.percent, 100);
  assert.equal(ok.progress?.reductionRatio, 0.333);
  const conv = storageReport([on('a', st({ phase: 'Converged', reason: 'NoSynchronousMode', remainingDirtyBytes: 4096 }))]);
  assert.equal(conv.state, 'Ready');
  assert.equal(conv.reason, 'Converged');
  assert.match(conv.message, /4096 bytes changed during the last pass/);
});

test('a failed agent fails the step with its (listed) reason and a message of the operator\'s own', () => {
  const r = storageReport([on('a', st({ phase: 'Failed', reason: 'TargetWriteFailed', message: 'errno 28 <script>' }))]);
  assert.equal(r.state, 'Failed');
  assert.equal(r.reason, 'TargetWriteFailed');
  assert.equal(r.message, 'disk a: the source agent reports TargetWriteFailed (logs of Pod ns/a-src)');
});

test('progress sums disks', () => {
  const r = storageReport([on('a', st({})), on('b', st({ bytesTotal: 300, bytesSent: 40, bytesOverWan: 30 }))]);
  assert.equal(r.progress?.bytesTotal, 400);
  assert.equal(r.progress?.bytesSent, 100);
  assert.equal(r.progress?.bytesOverWan, 50);
});

test('the provider takes nothing from the WanMigration: without a launched agent it asks nobody', async () => {
  const req = {
    migration: { metadata: { name: 'wm', annotations: { 'cloudnet.io/storage-agent': 'http://127.0.0.1:1/' } }, spec: { vmName: 'vm', targetSite: 's', targetNamespace: 'n' } },
    sourceVM: { metadata: { name: 'vm' } },
  } as unknown as StorageRequest;
  let ensured = 0;
  const launcher: AgentLauncher = {
    async ensure() { ensured++; return { agents: [], report: { state: 'Progressing', reason: 'LaunchingAgents', message: 'waiting for the agent Pods' } }; },
    async finish() { return undefined; },
    async release() {},
  };
  const r = await new AgentStoragePreCopy({ launcher }).sync(req, AbortSignal.timeout(5000));
  assert.equal(ensured, 1);
  assert.equal(r.reason, 'LaunchingAgents');
});
