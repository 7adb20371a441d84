// Flow registration at the sender relay (src/relay/transport/flows.ts, registry.ts, api.ts):
// validated input, idempotent registration, one owner per flow, redirects in step with the
// listeners, and the API's token check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { authorized } from '../../../src/relay/transport/api.ts';
import { FlowRegistry, parseRegistration, RegistrationError, type InterceptFlow } from '../../../src/relay/transport/index.ts';

const settings = { compression: 'Zstd', dedup: true, deltaPages: true, cacheSizeMiB: 512, opaque: false };
const body = (o: Record<string, unknown> = {}) => ({ namespace: 'tenant-a', name: 'vm1-to-b', destinations: [{ host: '198.51.100.2', port: 40000 }], settings, ...o });

test('registrations are validated', () => {
  assert.deepEqual(parseRegistration(body(), 'uid-1').owner, { namespace: 'tenant-a', name: 'vm1-to-b', migrationID: 'uid-1' });
  const bad: [unknown, RegExp][] = [
    [body({ namespace: 'Not_DNS' }), /namespace/],
    [body({ destinations: [] }), /destinations/],
    [body({ destinations: [{ host: 'relay.example', port: 1 }] }), /IPv4/],
    [body({ destinations: [{ host: '198.51.100.2', port: 70000 }] }), /port/],
    [body({ destinations: [{ host: '198.51.100.2', port: 1 }, { host: '198.51.100.2', port: 1 }] }), /repeat/],
    [body({ settings: { ...settings, compression: 'Brotli' } }), /compression/],
    [body({ settings: { ...settings, cacheSizeMiB: -1 } }), /cacheSizeMiB/],
    ['nope', /JSON object/],
  ];
  for (const [b, why] of bad) assert.throws(() => parseRegistration(b, 'uid-1'), (e: unknown) => e instanceof RegistrationError && e.status === 400 && why.test(e.message), String(why));
  assert.throws(() => parseRegistration(body(), '../x'), /migration ID/);
});

test('the registry keeps listeners and redirects in step, one owner per flow', async () => {
  const applied: InterceptFlow[][] = [];
  let fail = false;
  const accepted: string[] = [];
  const reg = new FlowRegistry({
    listenHost: '127.0.0.1', cacheMiB: 256,
    interceptor: { apply: async (f) => { if (fail) throw new Error('nft: permission denied'); applied.push([...f]); }, close: async () => { applied.push([]); } },
    onAccept: (s, flow) => { accepted.push(`${flow.owner.migrationID} ${flow.destination.port} ${flow.cacheMiB}`); s.destroy(); },
  });
  try {
    const st = await reg.put(parseRegistration(body(), 'uid-1'));
    assert.equal(st.flows.length, 1);
    assert.equal(st.effective.cacheSizeMiB, 256, 'a cache larger than the relay\'s is reported, not pretended');
    assert.deepEqual(applied.at(-1), [{ destination: { host: '198.51.100.2', port: 40000 }, localPort: st.flows[0].localPort }]);
    const again = await reg.put(parseRegistration(body(), 'uid-1'));
    assert.equal(again.flows[0].localPort, st.flows[0].localPort, 'idempotent: the same listener');
    await assert.rejects(reg.put(parseRegistration(body({ name: 'other' }), 'uid-2')), (e: unknown) => e instanceof RegistrationError && e.status === 409);
    // A redirected connection is handed over with its flow.
    await new Promise<void>((resolve) => { const c = net.connect(st.flows[0].localPort, '127.0.0.1', () => c.end()); c.on('close', () => resolve()); });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(accepted, ['uid-1 40000 256']);
    // The interceptor fails: the registration is dropped, never half-applied.
    fail = true;
    await assert.rejects(reg.put(parseRegistration(body({ destinations: [{ host: '198.51.100.3', port: 1 }] }), 'uid-3')), (e: unknown) => e instanceof RegistrationError && e.status === 500);
    assert.equal(reg.get('uid-3'), undefined);
    fail = false;
    assert.equal(await reg.delete('uid-1'), true);
    assert.equal(await reg.delete('uid-1'), false);
    assert.deepEqual(applied.at(-1), []);
  } finally {
    await reg.close();
  }
});

test('the API token is compared whole, as a bearer token', () => {
  const d = crypto.createHash('sha256').update('s3cret-token-0123456789').digest();
  assert.equal(authorized('Bearer s3cret-token-0123456789', d), true);
  for (const h of [undefined, '', 'Bearer', 'Bearer s3cret', 'Basic s3cret-token-0123456789', 'Bearer s3cret-token-0123456789 x']) assert.equal(authorized(h, d), false, String(h));
});

test('a migration the relay decides to bypass gets no redirect, for its whole lifetime', async () => {
  const applied: InterceptFlow[][] = [];
  let reason: string | undefined = 'the link outruns the relay';
  const reg = new FlowRegistry({
    listenHost: '127.0.0.1', cacheMiB: 256,
    interceptor: { apply: async (f) => { applied.push([...f]); }, close: async () => undefined },
    onAccept: (s) => s.destroy(),
    bypass: () => reason,
  });
  try {
    const st = await reg.put(parseRegistration(body(), 'uid-1'));
    assert.equal(st.bypass, 'the link outruns the relay');
    assert.deepEqual(st.flows, [{ destination: '198.51.100.2:40000', localPort: 0 }]);
    assert.deepEqual(applied.at(-1), [], 'nothing redirected');
    reason = undefined; // the link looks slower now: a migration under way keeps its decision
    assert.equal((await reg.put(parseRegistration(body(), 'uid-1'))).bypass, 'the link outruns the relay');
    assert.deepEqual(applied.at(-1), []);
    // Its flow still belongs to it: another migration cannot take it.
    await assert.rejects(reg.put(parseRegistration(body({ name: 'other' }), 'uid-2')), (e: unknown) => e instanceof RegistrationError && e.status === 409);
    // A new migration is decided afresh: relayed.
    const other = await reg.put(parseRegistration(body({ name: 'vm2-to-b', destinations: [{ host: '198.51.100.3', port: 40000 }] }), 'uid-3'));
    assert.equal(other.bypass, undefined);
    assert.ok(other.flows[0].localPort > 0);
    assert.deepEqual(applied.at(-1), [{ destination: { host: '198.51.100.3', port: 40000 }, localPort: other.flows[0].localPort }]);
  } finally {
    await reg.close();
  }
});
