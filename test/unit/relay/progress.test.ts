// The relay progress math (src/relay/transport/progress.ts), session attribution (session-owners.ts), the
// operator setting (src/operator/relay-client/progress-config.ts) and guest memory quantities: pure, no relay running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeSessions, etaSeconds, migrationProgress, parseSenderStats, reductionRatio, type Claimant, type RelaySession, type SessionRef } from '../../../src/relay/transport/index.ts';
import { parseRelayStatsSetting, relayFor } from '../../../src/operator/relay-client/progress-config.ts';
import { quantityBytes, vmGuestMemoryBytes } from '../../../src/operator/relay-client/guest-memory.ts';

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

const ref = (key: string, listener: string, startedMs: number): SessionRef => ({ key, listener, startedMs });

test('attribution: staggered migrations on one listener each get their own session, and keep it', () => {
  const owners = new Map<string, string>();
  const a: Claimant = { migrationID: 'a', memoryStartMs: T0 };
  const b: Claimant = { migrationID: 'b', memoryStartMs: T0 + 10_000 };
  attributeSessions([ref('s1', 'mem', T0 + 1000)], [a], owners);
  assert.equal(owners.get('s1'), 'a');
  // b starts; its sessions open. a already has its memory stream, so the new one is b's; a disk
  // stream could still be a's as well as b's, so it waits.
  const now = [ref('s1', 'mem', T0 + 1000), ref('s2', 'mem', T0 + 11_000), ref('d2', 'disk', T0 + 10_500)];
  attributeSessions(now, [a, b], owners);
  assert.deepEqual([...owners].sort(), [['s1', 'a'], ['s2', 'b']]);
  // a is done migrating memory: d2 can only be b's; s1 stays a's while the relay lists it...
  attributeSessions(now, [b], owners);
  assert.deepEqual([...owners].sort(), [['d2', 'b'], ['s1', 'a'], ['s2', 'b']]);
  // ...and is forgotten once it does not.
  attributeSessions(now.slice(1), [b], owners);
  assert.deepEqual([...owners].sort(), [['d2', 'b'], ['s2', 'b']]);
});

test('attribution: a session older than the migration is not it; simultaneous starts stay ambiguous; listeners resolve them', () => {
  const owners = new Map<string, string>();
  const a: Claimant = { migrationID: 'a', memoryStartMs: T0 + 10_000 };
  attributeSessions([ref('old', 'mem', T0)], [a], owners);
  assert.equal(owners.size, 0, 'opened 10 s before the migration started migrating memory');
  attributeSessions([ref('skew', 'mem', T0 + 9000)], [a], owners);
  assert.equal(owners.get('skew'), 'a', 'within the clock slack');

  const both = new Map<string, string>();
  const x: Claimant = { migrationID: 'x', memoryStartMs: T0 };
  const y: Claimant = { migrationID: 'y', memoryStartMs: T0 + 100 };
  const two = [ref('s1', 'mem', T0 + 500), ref('s2', 'mem', T0 + 600)];
  attributeSessions(two, [x, y], both);
  assert.equal(both.size, 0, 'either session could be either migration');
  attributeSessions(two, [{ ...x, listeners: ['mem'] }, { ...y, listeners: [] }], both);
  assert.deepEqual([...both], [['s1', 'x']], 'y is routed elsewhere, so s1 is x; s2 is nobody');
});

test('operator setting: one URL for all Sites, or per Site with a fallback; bad values refused', () => {
  const one = relayFor(parseRelayStatsSetting('http://relay-send:9410'));
  assert.equal(one('site-b'), 'http://relay-send:9410');
  const per = relayFor(parseRelayStatsSetting('site-b=http://10.0.0.7:9410, site-c=https://r.example/relay file:///run/relay/stats.json'));
  assert.equal(per('site-b'), 'http://10.0.0.7:9410');
  assert.equal(per('site-c'), 'https://r.example/relay');
  assert.equal(per('site-d'), 'file:///run/relay/stats.json');
  assert.equal(relayFor(parseRelayStatsSetting('site-b=http://h:1'))('site-c'), undefined);
  assert.throws(() => parseRelayStatsSetting('relay:9410'), /must be http, https or file/);
  assert.throws(() => parseRelayStatsSetting('not a url'), /not a URL/);
  assert.throws(() => parseRelayStatsSetting('http://a:1,http://b:1'), /more than one/);
  assert.throws(() => parseRelayStatsSetting('b=http://a:1,b=http://b:1'), /given twice/);
  assert.throws(() => parseRelayStatsSetting(' , '), /empty/);
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
