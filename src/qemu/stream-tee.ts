// A TCP forwarder that records what passes through it: the source QEMU connects here, every byte
// is forwarded to the real destination and the source->destination bytes are also written to a
// file. This is how real multi-round pre-copy streams are captured for relay tests and benchmarks
// while the destination still validates them by loading the VM. Backpressure is end to end (the
// file and the destination socket both pause the source), so QEMU's bandwidth estimate stays honest.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface StreamTeeOptions {
  listenHost?: string;
  /** 0 (default) picks a free port. */
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** File for the first connection's source->destination bytes; later connections (multifd
   *  channels) go to `<recordPath>.ch<N>`. Omit to only count. */
  recordPath?: string;
}

export interface StreamTee {
  readonly port: number;
  /** Bytes forwarded source->destination and destination->source (all connections). */
  readonly forwarded: { toDestination: number; toSource: number };
  /** Resolves when every accepted connection has closed and its recording is flushed. */
  drained(): Promise<void>;
  close(): Promise<void>;
}

export async function startStreamTee(o: StreamTeeOptions): Promise<StreamTee> {
  const forwarded = { toDestination: 0, toSource: 0 };
  const pending: Promise<void>[] = [];
  const sockets = new Set<Socket>();
  let index = 0;

  const server: Server = createServer((src) => {
    const i = index++;
    src.setNoDelay(true);
    src.pause();
    const dst = createConnection({ host: o.targetHost, port: o.targetPort });
    dst.setNoDelay(true);
    sockets.add(src).add(dst);
    const file = o.recordPath ? createWriteStream(i === 0 ? o.recordPath : `${o.recordPath}.ch${i}`) : undefined;
    src.on('data', (d: Buffer) => (forwarded.toDestination += d.length));
    dst.on('data', (d: Buffer) => (forwarded.toSource += d.length));
    const closeBoth = () => {
      src.destroy();
      dst.destroy();
    };
    src.on('error', closeBoth);
    dst.on('error', closeBoth);
    dst.once('connect', () => {
      src.pipe(dst);
      if (file) src.pipe(file);
      dst.pipe(src);
    });
    const done = Promise.all([once(src, 'close'), once(dst, 'close')]).then(async () => {
      sockets.delete(src);
      sockets.delete(dst);
      if (file) {
        if (!file.writableEnded) file.end();
        if (!file.closed) await once(file, 'close');
      }
    });
    pending.push(done);
  });
  server.listen(o.listenPort ?? 0, o.listenHost ?? '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    forwarded,
    async drained() {
      await Promise.all(pending);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await Promise.all(pending);
    },
  };
}
