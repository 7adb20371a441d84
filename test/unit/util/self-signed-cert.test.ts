// The metrics server's self-signed certificate must parse whatever random serial it drew: a
// serial whose DER INTEGER is not minimal (a leading 0x00 byte, 1 draw in 256 before) made
// OpenSSL reject the certificate and the operator fail to start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { selfSignedCert } from '../../../src/util/self-signed-cert.ts';

test('self-signed certificate: every serial is a positive 16-byte INTEGER that OpenSSL parses', () => {
  const draws = 1024; // without the fix, P(no bad serial in 1024 draws) = (255/256)^1024 ≈ 2 %
  let parsed = 0;
  for (let i = 0; i < draws; i++) {
    const { certPem, keyPem } = selfSignedCert({ commonName: 'c', dnsNames: ['localhost'] });
    // Positive (top bit clear) and minimal (no leading zero byte): 16 bytes as drawn.
    assert.match(new X509Certificate(certPem).serialNumber, /^(?!00)[0-7][0-9A-F]{31}$/);
    createSecureContext({ cert: certPem, key: keyPem }); // what the metrics server does at start
    parsed++;
  }
  assert.equal(parsed, draws);
});
