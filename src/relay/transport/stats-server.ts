// Operator-facing stats: GET /metrics (Prometheus) and GET /stats (JSON per session, with per-round
// figures), plus an optional JSON file rewritten every second for readers without HTTP.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { relayRegistry } from './metrics.ts';
import type { HostPort } from './net-util.ts';

export interface StatsSource {
  stats(): Record<string, unknown>;
}

export async function serveStats(addr: HostPort, src: StatsSource): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      relayRegistry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': relayRegistry.contentType });
        res.end(body);
      }, (err: unknown) => { res.writeHead(500); res.end(String(err)); });
    } else if (req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(src.stats()));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(addr.port, addr.host, resolve));
  return server;
}

export function boundPort(server: http.Server | net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/** Rewrites `file` atomically every `everyMs`; returns a stop function. */
export function writeStatsFile(file: string, src: StatsSource, everyMs = 1000): () => void {
  const write = (): void => {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(src.stats(), null, 1));
    fs.renameSync(tmp, file);
  };
  const t = setInterval(write, everyMs);
  t.unref();
  return () => { clearInterval(t); write(); };
}
