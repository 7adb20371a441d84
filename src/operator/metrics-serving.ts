// How the operator serves /metrics, chosen by flags as in a kubebuilder v4 main.go:
//   --metrics-secure (default): HTTPS, and each request authenticated (TokenReview) and
//     authorized (SubjectAccessReview: get on the non-resource URL /metrics) by the API server;
//   --metrics-cert-dir DIR: the serving certificate is DIR/tls.crt and DIR/tls.key (e.g. a
//     cert-manager Secret), re-read when they change; without it a self-signed one is made at start;
//   --metrics-secure=false: plain HTTP without authentication (only behind a trusted proxy, or
//     bound to 127.0.0.1).
import { readFileSync, statSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { RestClient } from '../kube/rest.ts';
import { startMetricsServer, type BoundServer } from './health.ts';
import { kubeMetricsAuth } from './metrics-auth.ts';
import { selfSignedCert, type ServingCert } from './self-signed-cert.ts';
import { logger } from '../util/log.ts';

export interface MetricsServing {
  bindAddress: string;
  secure: boolean;
  certDir?: string;
}

const CERT_CHECK_MS = 60_000;

function readCert(dir: string): ServingCert {
  return { certPem: readFileSync(join(dir, 'tls.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'tls.key'), 'utf8') };
}

function certStamp(dir: string): string {
  return ['tls.crt', 'tls.key'].map((f) => statSync(join(dir, f)).mtimeMs).join('/');
}

/** Starts the metrics server as configured; close() also stops watching the certificate. */
export async function serveMetrics(o: MetricsServing, registry: Registry, rest: RestClient): Promise<BoundServer | undefined> {
  if (!o.secure) return startMetricsServer(o.bindAddress, registry);
  const tls = o.certDir ? readCert(o.certDir) : selfSignedCert({ commonName: 'cloudnet-operator-metrics', dnsNames: ['localhost', hostname()], ipAddresses: ['127.0.0.1', '::1'] });
  const bound = await startMetricsServer(o.bindAddress, registry, { tls, authorizer: kubeMetricsAuth(rest) });
  if (!bound || !o.certDir) return bound;
  // Mounted Secrets are updated in place (cert-manager renews before expiry): swap the context.
  const dir = o.certDir;
  let stamp = certStamp(dir);
  const timer = setInterval(() => {
    try {
      const now = certStamp(dir);
      if (now === stamp) return;
      const next = readCert(dir);
      (bound.server as unknown as HttpsServer).setSecureContext({ cert: next.certPem, key: next.keyPem });
      stamp = now;
      logger('operator').info('metrics serving certificate reloaded', { dir });
    } catch (err) {
      logger('operator').warn('metrics serving certificate not reloaded', { dir, error: err instanceof Error ? err.message : String(err) });
    }
  }, CERT_CHECK_MS);
  timer.unref();
  return { ...bound, close: () => { clearInterval(timer); return bound.close(); } };
}
