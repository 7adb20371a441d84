// The operator's two HTTP endpoints, on separate ports as in kubebuilder projects:
//   metrics: /metrics (Prometheus text format from the manager's registry); by default HTTPS, and
//            every request authenticated and authorized by the API server (metrics-serving.ts,
//            src/kube/secure-serving.ts, src/kube/metrics-auth.ts)
//   probes:  /healthz (200 while the event loop serves requests), /readyz (200 once caches synced);
//            plain HTTP without authentication, because the kubelet probes them
import { serveHttp, type BoundServer } from '../kube/secure-serving.ts';

// The metrics server (metrics-serving.ts) is src/kube/secure-serving.ts, shared with the site gateway.
export type { BoundServer } from '../kube/secure-serving.ts';

export interface ProbeChecks {
  ready(): boolean;
}

export function startProbeServer(bind: string, checks: ProbeChecks): Promise<BoundServer | undefined> {
  return serveHttp(bind, (req, res) => {
    const path = req.url?.split('?')[0];
    res.setHeader('content-type', 'text/plain');
    if (path === '/healthz' || path === '/livez') {
      res.end('ok');
    } else if (path === '/readyz') {
      const ok = checks.ready();
      res.statusCode = ok ? 200 : 503;
      res.end(ok ? 'ok' : 'informers not synced');
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });
}
