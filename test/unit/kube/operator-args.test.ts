import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration, parseOperatorArgs } from '../../../src/operator/main.ts';
import { parseBindAddress } from '../../../src/kube/secure-serving.ts';
import { microTime } from '../../../src/kube/leader.ts';
import { resourcePath } from '../../../src/kube/rest.ts';
import { keyString, parseKey } from '../../../src/kube/types.ts';

test('parseDuration', () => {
  assert.equal(parseDuration('15s'), 15_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('3'), 3000);
  assert.throws(() => parseDuration('soon'));
});

test('parseBindAddress', () => {
  assert.deepEqual(parseBindAddress(':8080'), { host: undefined, port: 8080 });
  assert.deepEqual(parseBindAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseBindAddress('[::1]:9'), { host: '::1', port: 9 });
  assert.equal(parseBindAddress('0'), undefined);
  assert.throws(() => parseBindAddress(':http'));
});

test('parseOperatorArgs: defaults like a kubebuilder manager, flags override', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudnet-args-'));
  try {
    const kc = join(dir, 'kubeconfig');
    writeFileSync(kc, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
    const d = parseOperatorArgs(['--kubeconfig', kc]);
    assert.equal(d.leaderElect, false);
    assert.equal(d.metricsBindAddress, ':8080');
    assert.equal(d.healthProbeBindAddress, ':8081');
    assert.equal(d.leaseDurationMs, 15_000);
    assert.equal(d.renewDeadlineMs, 10_000);
    assert.equal(d.retryPeriodMs, 2_000);
    assert.equal(d.maxConcurrentReconciles, 16);
    assert.equal(d.kubeApiQps, 80);
    assert.equal(d.kubeApiBurst, 20);
    assert.equal(d.metricsSecure, true, 'kubebuilder v4: metrics authenticated and authorized by default');
    assert.equal(d.metricsCertDir, undefined);
    for (const off of [['--metrics-secure=false'], ['--no-metrics-secure']]) assert.equal(parseOperatorArgs(['--kubeconfig', kc, ...off]).metricsSecure, false, off.join(' '));
    assert.equal(parseOperatorArgs(['--kubeconfig', kc, '--metrics-secure=true', '--metrics-cert-dir', '/certs']).metricsCertDir, '/certs');
    assert.equal(parseOperatorArgs(['--kubeconfig', kc, '--leader-elect=true']).leaderElect, true);
    assert.equal(d.kubeConfig.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    const o = parseOperatorArgs(['--kubeconfig', kc, '--leader-elect', '--max-concurrent-reconciles', '4', '--leader-election-namespace', 'ops', '--lease-duration', '3s']);
    assert.equal(o.leaderElect, true);
    assert.equal(o.maxConcurrentReconciles, 4);
    assert.equal(o.namespace, 'ops');
    assert.equal(o.leaseDurationMs, 3000);
    assert.throws(() => parseOperatorArgs(['--kubeconfig', kc, '--max-concurrent-reconciles', '0']));
    const r = parseOperatorArgs(['--kubeconfig', kc, '--kube-api-qps', '0', '--kube-api-burst', '10']);
    assert.equal(r.kubeApiQps, 0, '0 turns the limit off');
    assert.equal(r.kubeApiBurst, 10);
    assert.throws(() => parseOperatorArgs(['--kubeconfig', kc, '--kube-api-burst', '0']));
    assert.throws(() => parseOperatorArgs(['--kubeconfig', kc, '--no-such-flag']));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('microTime has six fractional digits', () => {
  assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), '2026-01-02T03:04:05.678000Z');
});

test('resource paths and keys', () => {
  assert.equal(resourcePath({ group: '', version: 'v1', plural: 'configmaps' }, 'ns', 'a'), '/api/v1/namespaces/ns/configmaps/a');
  assert.equal(resourcePath({ group: 'cloudnet.io', version: 'v1alpha1', plural: 'sites' }, undefined, 'b', 'status'), '/apis/cloudnet.io/v1alpha1/sites/b/status');
  assert.equal(resourcePath({ group: 'x.io', version: 'v1', plural: 'things' }), '/apis/x.io/v1/things');
  assert.deepEqual(parseKey('ns/name'), { namespace: 'ns', name: 'name' });
  assert.deepEqual(parseKey('cluster-scoped'), { name: 'cluster-scoped' });
  assert.equal(keyString({ namespace: 'ns', name: 'n' }), 'ns/n');
  assert.equal(keyString({ name: 'n' }), 'n');
});
