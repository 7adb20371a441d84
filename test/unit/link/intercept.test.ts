// The gateway's nftables interception (src/link/intercept.ts): the script is one atomic
// transaction that makes the redirects exactly the registered flows; bad input never reaches nft.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interceptorFromSpec, NftInterceptor, nftScript } from '../../../src/link/intercept.ts';

test('one table replaced in one transaction: a map from (daddr, dport) to the local port', () => {
  const s = nftScript('cloudnet_intercept', [{ destination: { host: '198.51.100.2', port: 40000 }, localPort: 35001 }, { destination: { host: '198.51.100.2', port: 40001 }, localPort: 35002 }]);
  assert.match(s, /^add table ip cloudnet_intercept\ndelete table ip cloudnet_intercept\ntable ip cloudnet_intercept \{/);
  assert.match(s, /elements = \{ 198\.51\.100\.2 \. 40000 : 35001, 198\.51\.100\.2 \. 40001 : 35002 \}/);
  assert.match(s, /type nat hook prerouting priority dstnat; policy accept; meta l4proto tcp redirect to ip daddr \. tcp dport map @flows;/);
  assert.match(s, /type nat hook output priority -100/);
  assert.match(s, /set ports \{ type inet_service; elements = \{ 35001, 35002 \} \}/);
  assert.match(s, /tcp dport @ports ct status dnat accept; tcp dport @ports drop;/, 'flow ports only for redirected connections');
  assert.doesNotMatch(nftScript('t', []), /elements/, 'no flows: an empty map, nothing redirected');
});

test('addresses, ports and table names are checked before anything runs', () => {
  assert.throws(() => nftScript('t', [{ destination: { host: '198.51.100.2; flush ruleset', port: 1 }, localPort: 2 }]), /not an IPv4/);
  assert.throws(() => nftScript('t', [{ destination: { host: '198.51.100.256', port: 1 }, localPort: 2 }]), /not an IPv4/);
  assert.throws(() => nftScript('t', [{ destination: { host: '198.51.100.2', port: 0 }, localPort: 2 }]), /bad port/);
  assert.throws(() => nftScript('t x', []), /bad nftables table/);
});

test('apply and close go to nft; --intercept parses', async () => {
  const ran: string[] = [];
  const i = new NftInterceptor({ table: 'cn_t', nft: async (s) => { ran.push(s); } });
  await i.apply([{ destination: { host: '192.0.2.9', port: 1234 }, localPort: 4321 }]);
  await i.close();
  assert.match(ran[0], /192\.0\.2\.9 \. 1234 : 4321/);
  assert.equal(ran[1], 'add table ip cn_t\ndelete table ip cn_t\n');
  assert.equal(interceptorFromSpec('nft').table, 'cloudnet_intercept');
  assert.equal(interceptorFromSpec('nft:cn_x').table, 'cn_x');
  assert.throws(() => interceptorFromSpec('iptables'), /unknown --intercept/);
});
