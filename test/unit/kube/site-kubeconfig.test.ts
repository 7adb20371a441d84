// What a Site's kubeconfig Secret may hold (src/kube/clusters.ts kubeConfigFromString): inline
// credentials only; no command, no file of the operator's, no unverified API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import yaml from 'js-yaml';
import { ClusterClientError, kubeConfigFromString } from '../../../src/kube/clusters.ts';

const kubeconfig = (user: Record<string, unknown>, cluster: Record<string, unknown> = {}) => yaml.dump({
  apiVersion: 'v1', kind: 'Config', 'current-context': 'b',
  clusters: [{ name: 'b', cluster: { server: 'https://198.51.100.7:6443', 'certificate-authority-data': 'Q0E=', ...cluster } }],
  users: [{ name: 'peer', user }],
  contexts: [{ name: 'b', context: { cluster: 'b', user: 'peer' } }],
});

test('inline credentials are accepted', () => {
  const kc = kubeConfigFromString(kubeconfig({ token: 's3cr3t-token' }), 'Secret x');
  assert.equal(kc.getCurrentCluster()?.server, 'https://198.51.100.7:6443');
  kubeConfigFromString(kubeconfig({ 'client-certificate-data': 'Q0VSVA==', 'client-key-data': 'S0VZ' }), 'Secret x');
});

test('commands, files of the operator and an unverified server are refused, naming the entry, never a value', () => {
  const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    [{ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: '/bin/sh', args: ['-c', 'touch /tmp/pwned'] } }, {}, /users\[0\]\.user\.exec/],
    [{ 'auth-provider': { name: 'oidc', config: { 'id-token': 's3cr3t' } } }, {}, /users\[0\]\.user\.auth-provider/],
    [{ 'token-file': '/var/run/secrets/kubernetes.io/serviceaccount/token' }, {}, /users\[0\]\.user\.token-file/],
    [{ 'client-certificate': '/etc/cert.pem', 'client-key': '/etc/key.pem' }, {}, /users\[0\]\.user\.client-certificate, users\[0\]\.user\.client-key/],
    [{ token: 's3cr3t' }, { 'insecure-skip-tls-verify': true }, /clusters\[0\]\.cluster\.insecure-skip-tls-verify/],
    [{ token: 's3cr3t' }, { 'certificate-authority': '/etc/ca.pem' }, /clusters\[0\]\.cluster\.certificate-authority\b/],
  ];
  for (const [user, cluster, entry] of cases) {
    assert.throws(() => kubeConfigFromString(kubeconfig(user, cluster), 'Secret cloudnet-system/site-b'), (e: unknown) => {
      assert.ok(e instanceof ClusterClientError);
      assert.equal(e.reason, 'KubeconfigInvalid');
      assert.match(e.message, entry);
      assert.doesNotMatch(e.message, /s3cr3t|\/bin\/sh|serviceaccount|\/etc\//);
      return true;
    });
  }
});

test('insecure-skip-tls-verify: false is fine', () => {
  kubeConfigFromString(kubeconfig({ token: 't' }, { 'insecure-skip-tls-verify': false }), 'Secret x');
});
