// Free loopback TCP ports for test servers. Ports come from below Linux's ephemeral range
// (32768+), so outgoing connections (for example kube-apiserver's to etcd) never take a port
// between our check and the server's bind; a random pick plus a per-process set keeps parallel
// test processes apart. A server that still loses a race fails to bind, and callers retry.
import { createServer } from 'node:net';

const LOW = 20000;
const HIGH = 32000;
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canBind(port)) return port;
  }
  throw new Error(`no free loopback port found in ${LOW}-${HIGH}`);
}
