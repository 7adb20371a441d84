// Names and label values derived from user-chosen names stay within their limits, stay valid, are
// the same on every call, and keep long names that share a prefix apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundedName, labelValue, truncateName, LABEL_VALUE_MAX, OBJECT_NAME_MAX } from '../../../src/api/names.ts';

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The longest legal name: a DNS subdomain of 253 characters (labels of 63 and dots). */
const longest = (fill: string) => [fill.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');

test('a name within the limit is kept as it is', () => {
  assert.equal(labelValue('vm-a-to-site-b'), 'vm-a-to-site-b');
  assert.equal(labelValue('x'.repeat(63)), 'x'.repeat(63));
  assert.equal(boundedName('a'.repeat(253), OBJECT_NAME_MAX), 'a'.repeat(253));
});

test('a longer name is cut and hashed: within the limit, valid, deterministic, distinct', () => {
  const a = longest('a');
  assert.equal(a.length, 253);
  assert.match(a, SUBDOMAIN);
  const v = labelValue(a);
  assert.equal(v.length <= LABEL_VALUE_MAX, true);
  assert.match(v, LABEL_VALUE);
  assert.equal(labelValue(a), v, 'same input, same value');
  // Same first 63 characters, different rest: still different values.
  const b = `${'a'.repeat(63)}.${'z'.repeat(63)}`;
  assert.notEqual(labelValue(b), v);
  assert.ok(v.startsWith('a'.repeat(40)), 'a readable prefix is kept');
});

test('the cut never leaves "-" or "." before the hash', () => {
  const s = `${'a'.repeat(51)}.-.${'b'.repeat(30)}`; // the cut falls on the separators
  const v = labelValue(s);
  assert.match(v, LABEL_VALUE);
  assert.doesNotMatch(v, /[.-]{2}/);
  assert.equal(truncateName('abc-.-', 6), 'abc');
});
