import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendCerts, bundleProblem, missingTrust, parseCABundle } from '../../../src/controller/ca-bundle.ts';
import { selfSignedCA } from '../../standin/ca.ts';

const A = selfSignedCA('kubevirt.io@a');
const B = selfSignedCA('kubevirt.io@b');
const now = new Date();
const fp = (pem: string) => parseCABundle(pem).certs.map((c) => c.fingerprint256);

test('garbage in kubevirt-ca is rejected with a reason that says why', () => {
  const fake = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';
  assert.match(parseCABundle(fake).error ?? '', /does not parse as X\.509/);
  assert.match(parseCABundle('hello').error ?? '', /no PEM CERTIFICATE block/);
  assert.match(parseCABundle(`${A}junk`).error ?? '', /outside PEM CERTIFICATE blocks/);
  assert.match(parseCABundle('').error ?? '', /empty/);
  assert.equal(bundleProblem('source', 'kubevirt', fake, true, now)?.reason, 'CABundleInvalid');
  assert.equal(bundleProblem('source', 'kubevirt', undefined, false, now)?.reason, 'CABundleNotFound');
  assert.equal(bundleProblem('source', 'kubevirt', `${A}${B}`, true, now), undefined);
  // A bundle whose certificates all expired cannot be trusted from (virt-operator skips them).
  assert.match(bundleProblem('source', 'kubevirt', A, true, new Date(Date.now() + 30 * 86400_000))?.message ?? '', /no certificate valid now/);
});

test('trust counts certificates in kubevirt-ca or waiting in kubevirt-external-ca, compared by DER not text', () => {
  assert.deepEqual(missingTrust(A, B, '', now).map((c) => c.fingerprint256), fp(A));
  // virt-operator moved A from the inbox into kubevirt-ca and emptied the inbox: trusted.
  assert.deepEqual(missingTrust(A, `${B}${A}`, '', now), []);
  // Still in the inbox: trusted as well.
  assert.deepEqual(missingTrust(A, B, A, now), []);
  // Reformatted PEM (different line breaks) is the same certificate.
  const reflowed = A.replace(/\n(?!-----)/g, '\r\n');
  assert.deepEqual(missingTrust(reflowed, `${B}${A}`, '', now), []);
  // A source bundle that already holds B (imported earlier) asks B to trust only A.
  assert.deepEqual(missingTrust(`${A}${B}`, B, '', now).map((c) => c.fingerprint256), fp(A));
});

test('appendCerts writes parseable PEM and is stable', () => {
  const certs = parseCABundle(`${A}${B}`).certs;
  const out = appendCerts('', certs);
  assert.deepEqual(fp(out), fp(`${A}${B}`));
  assert.equal(parseCABundle(out).error, undefined);
  assert.equal(appendCerts(out, []), out);
  assert.deepEqual(fp(appendCerts(A, parseCABundle(B).certs)), fp(`${A}${B}`));
});
