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

/**
 * Rewrites `file` atomically every `everyMs`; returns a stop function (which writes it a last
 * time). The periodic writes are asynchronous: a slow disk must not stall the relay's event loop
 * (measured: renames of 10-100 ms on the loaded test machine, in the middle of a migration).
 */
export function writeStatsFile(file: string, src: StatsSource, everyMs = 1000): () => void {
  const tmp = `${file}.tmp`;
  let writing = false;
  let stopped = false;
  const writeAsync = (): void => {
    if (writing) return; // the previous write is still on its way: skip this tick
    writing = true;
    fs.promises.writeFile(tmp, JSON.stringify(src.stats(), null, 1))
      .then(() => (stopped ? undefined : fs.promises.rename(tmp, file))) // never over the final write
      .catch(() => undefined)
      .finally(() => { writing = false; });
  };
  const t = setInterval(writeAsync, everyMs);
  t.unref();
  return () => {
    clearInterval(t);
    stopped = true;
    const last = `${file}.last.tmp`; // not the periodic temp file, which a write may still be using
    fs.writeFileSync(last, JSON.stringify(src.stats(), null, 1));
    fs.renameSync(last, file);
  };
}
