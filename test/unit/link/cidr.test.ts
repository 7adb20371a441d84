import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDefaultRoute, normalizeCidr, overlaps, parseCidr } from '../../../src/link/cidr.ts';

test('normalises like `wg show`: host bits cleared, explicit prefix', () => {
  assert.equal(normalizeCidr('198.51.100.7/24'), '198.51.100.0/24');
  assert.equal(normalizeCidr('198.18.10.2'), '198.18.10.2/32');
  assert.equal(normalizeCidr('2001:db8::1/64'), '2001:db8::/64');
  assert.equal(normalizeCidr('::/0'), '::/0');
  assert.equal(normalizeCidr('2001:db8:0:0:1:0:0:1/128'), '2001:db8::1:0:0:1/128');
});

test('rejects garbage', () => {
  for (const bad of ['', '300.1.1.1/8', '192.0.2.0/33', '192.0.2.0/x', 'example.com/24', '192.0.2.0/24/1']) {
    assert.throws(() => parseCidr(bad), Error, bad);
  }
});

test('default routes and overlaps', () => {
  assert.ok(isDefaultRoute('0.0.0.0/0'));
  assert.ok(!isDefaultRoute('0.0.0.0/1'));
  assert.ok(overlaps('198.51.100.0/24', '198.51.100.128/25'));
  assert.ok(!overlaps('198.51.100.0/24', '192.0.2.0/24'));
  assert.ok(!overlaps('192.0.2.0/24', '2001:db8::/32'));
});
