// The relay progress math (src/relay/transport/progress.ts), the owner each session names, the
// operator setting (src/operator/relay-client/relay-config.ts) and guest memory quantities: pure, no relay running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etaSeconds, migrationProgress, parseSenderStats, reductionRatio, type RelaySession } from '../../../src/relay/transport/index.ts';
import { parseRelayApiSetting, relayConfigFromEnv, relayFor } from '../../../src/operator/relay-client/relay-config.ts';
import { vmGuestMemoryBytes } from '../../../src/operator/relay-client/guest-memory.ts';
import { quantityBytes } from '../../../src/api/quantity.ts';

const MiB = 1 << 20;
const T0 = Date.parse('2026-01-01T00:00:00Z');

function session(p: Partial<RelaySession> & Pick<RelaySession, 'id'>): RelaySession {
  return { target: 'mem', label: '', state: 'open', startedMs: T0, bytesIn: 0, wireBytes: 0, roundRawBytes: [], ...p };
}

test('reduction ratio is WAN bytes per stream byte, 3 decimals, undefined before any input', () => {
  assert.equal(reductionRatio(313, 1000), 0.313);
  assert.equal(reductionRatio(1, 3), 0.333);
  assert.equal(reductionRatio(5, 0), undefined);
});

test('ETA: first pass from the rest of guest memory, later passes from the last complete round', () => {
  // 100 MiB in 10 s = 10 MiB/s; 256 MiB guest: 156 MiB left → 16 s (rounded).
  assert.equal(etaSeconds({ bytesIn: 100 * MiB, elapsedMs: 10_000, roundRawBytes: [100 * MiB], memoryBytes: 256 * MiB }), 16);
  assert.equal(etaSeconds({ bytesIn: 100 * MiB, elapsedMs: 10_000, roundRawBytes: [100 * MiB] }), undefined, 'no total, no first-pass ETA');
  assert.equal(etaSeconds({ bytesIn: 300 * MiB, elapsedMs: 10_000, roundRawBytes: [256 * MiB, 30 * MiB, 4 * MiB], memoryBytes: 256 * MiB }), 1);
  assert.equal(etaSeconds({ bytesIn: 0, elapsedMs: 10_000, roundRawBytes: [], memoryBytes: 256 * MiB }), undefined, 'no rate yet');
  assert.equal(etaSeconds({ bytesIn: 300 * MiB, elapsedMs: 10_000, roundRawBytes: [300 * MiB], memoryBytes: 256 * MiB }), 0, 'never negative');
});

test('progress adds the sessions of one migration; rounds and ETA come from the memory stream', () => {
  const disk = session({ id: 1, target: 'disk', bytesIn: 40 * MiB, wireBytes: 10 * MiB, state: 'closed', closeReason: 'ok' });
  const mem = session({ id: 2, startedMs: T0 + 1000, bytesIn: 100 * MiB, wireBytes: 30 * MiB, roundRawBytes: [90 * MiB, 10 * MiB] });
  const p = migrationProgress([disk, mem], { nowMs: T0 + 11_000, memoryBytes: 256 * MiB });
  // percent: 10 s of the memory stream so far, 9 s to go.
  assert.deepEqual(p, { bytesTotal: 256 * MiB, percent: 52, bytesSent: 140 * MiB, bytesOverWan: 40 * MiB, rounds: 2, reductionRatio: 0.286, etaSeconds: 9 });
  const done = migrationProgress([{ ...mem, state: 'closed', closeReason: 'ok' }], { nowMs: T0 + 20_000 });
  assert.equal(done?.etaSeconds, 0, 'a stream that ended cleanly has nothing left');
  assert.equal(done?.percent, 100);
  assert.equal(done?.bytesTotal, undefined);
  const failed = migrationProgress([{ ...mem, state: 'closed', closeReason: 'peer-lost' }], { nowMs: T0 + 20_000 });
  assert.equal(failed?.etaSeconds, undefined);
  assert.equal(failed?.percent, undefined, 'no ETA, no percent');
  assert.equal(migrationProgress([], { nowMs: T0 }), undefined);
});

test('sender stats JSON: live and finished sessions, malformed ones skipped, receiver stats refused', () => {
  const s = parseSenderStats({
    role: 'sender',
    sessions: [{ id: 3, label: '127.0.0.1:5000->mem', target: 'mem', state: 'open', startedAt: new Date(T0).toISOString(), bytesIn: 10, wireBytes: 4, rounds: [{ rawBytes: 7 }, { rawBytes: 3 }] },
      { id: 'x', target: 'mem' }],
    finished: [{ id: 1, target: 'disk', state: 'closed', closeReason: 'ok', startedAt: new Date(T0).toISOString(), bytesIn: 1, wireBytes: 1, rounds: [] }],
  });
  assert.equal(s.sessions.length, 2);
  assert.deepEqual(s.sessions[0], { id: 3, target: 'mem', label: '127.0.0.1:5000->mem', state: 'open', startedMs: T0, bytesIn: 10, wireBytes: 4, roundRawBytes: [7, 3] });
  assert.equal(s.sessions[1].closeReason, 'ok');
  assert.throws(() => parseSenderStats({ role: 'receiver', sessions: [] }), /expected the sender/);
  assert.throws(() => parseSenderStats('nope'), /not a JSON object/);
});

test('sender stats JSON: a session of a registered flow names its WanMigration', () => {
  const owner = { namespace: 'tenant-a', name: 'vm1-to-b', migrationID: 'uid-1' };
  const s = parseSenderStats({
    role: 'sender',
    sessions: [
      { id: 4, label: 'x', target: '198.51.100.3:40001', destination: '198.51.100.3:40001', migration: owner, startedAt: new Date(T0).toISOString(), bytesIn: 1, wireBytes: 1 },
      { id: 5, label: 'y', target: 'mem', migration: { namespace: 'a' }, startedAt: new Date(T0).toISOString(), bytesIn: 1, wireBytes: 1 },
    ],
  });
  assert.deepEqual(s.sessions[0].owner, owner);
  assert.equal(s.sessions[1].owner, undefined, 'an incomplete owner is no owner');
});

test('operator setting: one API URL for all Sites, or per Site with a fallback; https or unix only', () => {
  const one = relayFor(parseRelayApiSetting('https://relay-send:9443'));
  assert.equal(one('site-b'), 'https://relay-send:9443');
  const per = relayFor(parseRelayApiSetting('site-b=https://10.0.0.7:9443, site-c=unix:///run/cloudnet/relay-api.sock https://r.example:9443'));
  assert.equal(per('site-b'), 'https://10.0.0.7:9443');
  assert.equal(per('site-c'), 'unix:///run/cloudnet/relay-api.sock');
  assert.equal(per('site-d'), 'https://r.example:9443');
  assert.equal(relayFor(parseRelayApiSetting('site-b=https://h:1'))('site-c'), undefined);
  assert.throws(() => parseRelayApiSetting('http://relay:9410'), /must be https:\/\/ or unix:\/\//);
  assert.throws(() => parseRelayApiSetting('not a url'), /not a URL/);
  assert.throws(() => parseRelayApiSetting('https://a:1,https://b:1'), /more than one/);
  assert.throws(() => parseRelayApiSetting('b=https://a:1,b=https://b:1'), /given twice/);
  assert.throws(() => parseRelayApiSetting(' , '), /empty/);
  assert.throws(() => relayConfigFromEnv({ CLOUDNET_RELAY_API: 'https://a:1' }), /CLOUDNET_RELAY_API_TOKEN_FILE/);
  assert.equal(relayConfigFromEnv({}), undefined);
});

test('guest memory: quantities, and the VM fields KubeVirt takes it from', () => {
  assert.equal(quantityBytes('256Mi'), 256 * MiB);
  assert.equal(quantityBytes('1.5Gi'), 1.5 * 1024 * MiB);
  assert.equal(quantityBytes('2G'), 2e9);
  assert.equal(quantityBytes('2e9'), 2e9);
  assert.equal(quantityBytes('512'), 512);
  assert.equal(quantityBytes('12Xi'), undefined);
  const vm = (domain: unknown) => ({ metadata: { name: 'v' }, spec: { template: { spec: { domain } } } });
  assert.equal(vmGuestMemoryBytes(vm({ memory: { guest: '128Mi' }, resources: { requests: { memory: '1Gi' } } })), 128 * MiB);
  assert.equal(vmGuestMemoryBytes(vm({ resources: { requests: { memory: '1Gi' } } })), 1024 * MiB);
  assert.equal(vmGuestMemoryBytes(vm({})), undefined);
});
