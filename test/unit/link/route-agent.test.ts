// The route agent (src/link/route-agent.ts) against a fake `ip`: its routes (proto 211) become
// exactly the desired ones; routes of others are never touched; stop removes its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROUTE_PROTO, RouteAgent } from '../../../src/link/route-agent.ts';

function fakeIp(initial: { dst: string; gateway?: string; protocol: string }[]) {
  let table = [...initial];
  const calls: string[] = [];
  const ip = async (args: string[]): Promise<string> => {
    calls.push(args.join(' '));
    if (args[0] === '-j') return JSON.stringify(table.filter((r) => r.protocol === String(ROUTE_PROTO)));
    if (args[1] === 'replace') { table = table.filter((r) => r.dst !== args[2]); table.push({ dst: args[2], gateway: args[4], protocol: args[6] }); }
    if (args[1] === 'del') table = table.filter((r) => !(r.dst === args[2] && r.protocol === args[4]));
    if (args[1] === 'flush') table = table.filter((r) => r.protocol !== args[3]);
    return '';
  };
  return { ip, calls, table: () => table };
}

test('routes the peer networks via the gateway node, replaces what changed, leaves others alone', async () => {
  const f = fakeIp([{ dst: '10.9.0.0/16', gateway: '192.0.2.254', protocol: 'static' }, { dst: '203.0.113.0/24', gateway: '192.0.2.1', protocol: '211' }]);
  let want = [{ via: '192.0.2.1', networks: ['198.51.100.0/24', '198.18.50.7/20'] }];
  const agent = new RouteAgent({ desired: async () => want, ip: f.ip, localAddresses: () => ['192.0.2.9'] });
  await agent.reconcile();
  const ours = () => f.table().filter((r) => r.protocol === '211').map((r) => `${r.dst} via ${r.gateway}`).sort();
  assert.deepEqual(ours(), ['198.18.48.0/20 via 192.0.2.1', '198.51.100.0/24 via 192.0.2.1'], 'networks normalised; a stale route of ours removed');
  assert.ok(f.table().some((r) => r.dst === '10.9.0.0/16'), 'someone else\'s route stays');
  const before = f.calls.length;
  await agent.reconcile();
  assert.equal(f.calls.length - before, 1, 'nothing changed: only the read');
  want = [{ via: '192.0.2.7', networks: ['198.51.100.0/24'] }]; // the gateway moved to another node
  await agent.reconcile();
  assert.deepEqual(ours(), ['198.51.100.0/24 via 192.0.2.7']);
  await agent.stop();
  assert.deepEqual(ours(), []);
  assert.ok(f.table().some((r) => r.dst === '10.9.0.0/16'));
});

test('on the gateway node itself (the target is one of its own addresses) nothing is routed', async () => {
  const f = fakeIp([]);
  const agent = new RouteAgent({ desired: async () => [{ via: '192.0.2.1', networks: ['198.51.100.0/24'] }], ip: f.ip, localAddresses: () => ['127.0.0.1', '192.0.2.1'] });
  await agent.reconcile();
  assert.deepEqual(f.table(), []);
});

test('IPv6 networks are refused (the bed and the gateway route IPv4)', async () => {
  const agent = new RouteAgent({ desired: async () => [{ via: '192.0.2.1', networks: ['2001:db8::/32'] }], ip: fakeIp([]).ip, localAddresses: () => [] });
  await assert.rejects(agent.reconcile(), /only IPv4/);
});

test('in a cluster: each gateway that names its node routes its peer networks there', async () => {
  const { targetsFromStates } = await import('../../../src/link/route-agent-cli.ts');
  const base = { site: 'site-a', publicKey: 'k', updatedAt: '2026-01-01T00:00:00Z' };
  assert.deepEqual(targetsFromStates([
    { ...base, nodeAddress: '192.0.2.1', peerNetworks: ['198.51.100.0/24', '198.18.48.0/20'] },
    { ...base, peerNetworks: ['203.0.113.0/24'] }, // an older gateway: no node address published
    undefined,
  ]), [{ via: '192.0.2.1', networks: ['198.51.100.0/24', '198.18.48.0/20'] }]);
});
