// How the operator serves /metrics, chosen by flags as in a kubebuilder v4 main.go:
//   --metrics-secure (default): HTTPS, and each request authenticated (TokenReview) and
//     authorized (SubjectAccessReview: get on the non-resource URL /metrics) by the API server;
//   --metrics-cert-dir DIR: the serving certificate is DIR/tls.crt and DIR/tls.key (e.g. a
//     cert-manager Secret), re-read when they change; without it a self-signed one is made at start;
//   --metrics-secure=false: plain HTTP without authentication (only behind a trusted proxy, or
//     bound to 127.0.0.1).
// The serving itself is src/kube/secure-serving.ts, shared with the site gateway.
import type { Registry } from 'prom-client';
import type { RestClient } from '../kube/rest.ts';
import { metricsHandler, serveSecure, type BoundServer, type SecureServing } from '../kube/secure-serving.ts';

export type MetricsServing = SecureServing;

/** Starts the metrics server as configured; close() also stops watching the certificate. */
export function serveMetrics(o: MetricsServing, registry: Registry, rest: RestClient): Promise<BoundServer | undefined> {
  return serveSecure(o, metricsHandler(registry), rest, { commonName: 'cloudnet-operator-metrics', component: 'operator' });
}
