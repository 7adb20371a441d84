// The receiver relay's seed intake (`relay receive --seed-listen HOST:PORT`): a listener on which
// a local process, the storage pre-copy's target agent when it finishes, streams the 4 KiB pages
// that the target site already holds. They go to ReceiverRelay.seed() in batches and are announced
// to the sender relays; from then on a page or NBD block with that content crosses the WAN as a
// 16-byte reference (KubeVirt's final disk mirror of a pre-copied disk, mostly).
//
// What a client sends can never change what the relay delivers: a seed is keyed by the SHA-256 the
// relay computes itself from the bytes, and a reference resolves only to content with that digest.
// The worst a client can do is fill the bounded seed store with useless pages, so the intake is
// meant for a node-local or cluster-internal address.
import net from 'node:net';
import { logger } from '../../util/log.ts';
import type { HostPort } from './net-util.ts';

const log = logger('relay-seed-intake');
const PAGE = 4096;
const BATCH = 256 * PAGE;

export interface SeedSinkRelay {
  seed(data: Buffer): { blocks: number; added: number; full: boolean };
}

export interface SeedIntake {
  port: number;
  close(): Promise<void>;
}

/** Per connection: pages in, `{"added":N,"full":bool}\n` back when the client ends its side. */
export async function startSeedIntake(listen: HostPort, relay: SeedSinkRelay): Promise<SeedIntake> {
  const server = net.createServer((s) => {
    let pending: Buffer[] = [];
    let size = 0;
    let added = 0;
    let full = false;
    const flush = (all: boolean): void => {
      if (!size) return;
      const buf = Buffer.concat(pending);
      const usable = all ? buf.length - (buf.length % PAGE) : buf.length - (buf.length % BATCH);
      if (usable > 0 && !full) {
        const r = relay.seed(buf.subarray(0, usable));
        added += r.added;
        full = r.full;
      }
      const rest = buf.subarray(usable);
      pending = rest.length && !all ? [Buffer.from(rest)] : [];
      size = all ? 0 : rest.length;
    };
    s.on('data', (d: Buffer) => {
      pending.push(d);
      size += d.length;
      if (size >= BATCH) flush(false);
    });
    s.on('end', () => {
      flush(true);
      log.info('seeded from a client', { remote: s.remoteAddress, added: String(added), full: String(full) });
      s.end(`${JSON.stringify({ added, full })}\n`);
    });
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as net.AddressInfo).port;
  log.info('seed intake listening', { listen: `${listen.host}:${port}` });
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}
