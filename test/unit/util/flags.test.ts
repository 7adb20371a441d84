// Numeric command-line flags: a value outside its rule is an error naming the flag and the rule;
// an absent flag takes its fallback (or stays absent).
import assert from 'node:assert/strict';
import test from 'node:test';
import { mibFlag, numberFlag } from '../../../src/util/flags.ts';

test('numberFlag takes a number within its rule, and the fallback when absent', () => {
  assert.equal(numberFlag('cache-mb', '64', 256, { min: 1, unit: 'MiB' }), 64);
  assert.equal(numberFlag('cache-mb', '0.5', 256, { min: 0.25, unit: 'MiB' }), 0.5);
  assert.equal(numberFlag('cache-mb', undefined, 256, { min: 1, unit: 'MiB' }), 256);
  assert.equal(numberFlag('max-passes', undefined, undefined, { min: 1, integer: true, unit: 'passes' }), undefined);
  assert.equal(numberFlag('interval-ms', '500', 5000, { min: 100, max: 600_000, integer: true, unit: 'milliseconds' }), 500);
});

test('numberFlag refuses what is not a number of the rule, naming the flag', () => {
  const rule = { min: 1, max: 10, integer: true, unit: 'passes' };
  for (const bad of ['abc', '', ' ', '0', '11', '2.5', 'NaN', 'Infinity', '-1']) {
    assert.throws(() => numberFlag('max-passes', bad, 3, rule), { message: `--max-passes ${bad}: a whole number of passes, from 1 to 10` }, JSON.stringify(bad));
  }
  assert.throws(() => numberFlag('window-mb', '0', 8, { min: 0.25, unit: 'MiB' }), { message: '--window-mb 0: a number of MiB, at least 0.25' });
});

test('mibFlag: a size in MiB as whole bytes, checked as numberFlag checks it', () => {
  assert.equal(mibFlag('cache-mb', undefined, 256, { min: 1 }), 256 * (1 << 20));
  assert.equal(mibFlag('window-mb', '0.25', 8, { min: 0.25 }), 1 << 18);
  assert.equal(mibFlag('window-mb', '1.0000001', 8, { min: 0.25 }), Math.round(1.0000001 * (1 << 20)));
  assert.equal(mibFlag('converge-mb', undefined, undefined, { min: 0 }), undefined);
  assert.throws(() => mibFlag('cache-mb', '0', 256, { min: 1 }), /--cache-mb 0: a number of MiB, at least 1/);
});
