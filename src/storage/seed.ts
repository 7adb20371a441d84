// Seeding a relay pair's content caches with what the target already holds, so that a later
// stream (KubeVirt's own NBD disk migration, or a pre-copy after a relay restart) turns those
// pages into cache references instead of sending them again.
//
// The caches must stay in lockstep: both relays insert the same pages in the same order. The
// sender side decides the list — pages whose content on the source disk has the key the target's
// index (GET /index of the target agent) holds — and both sides insert exactly that list: the
// sender from the source disk, the receiver from the target volume. A page that changed on either
// side in between only costs a cache miss: a reference names a strong hash and the receiver checks
// it against the bytes it holds.
import { closeSync, openSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import { digest, DIGEST_WORDS, type CodecContext } from '../relay/codec/index.ts';
import { PAGE } from './extents.ts';
import { PageIndex, pageKey, ZERO_PAGE_KEY } from './index-file.ts';

/** Pages (ascending, non-zero, distinct content) of `diskPath` whose key matches `targetIndex`. */
export function seedablePages(diskPath: string, targetIndex: PageIndex, limit = Infinity): number[] {
  const fd = openSync(diskPath, 'r');
  const seen = new Set<string>();
  const out: number[] = [];
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let off = 0; off < targetIndex.volumeBytes && out.length < limit; off += buf.length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, targetIndex.volumeBytes - off), off);
      for (let i = 0; i + PAGE <= n && out.length < limit; i += PAGE) {
        const p = (off + i) / PAGE;
        const key = pageKey(buf.subarray(i, i + PAGE));
        if (key.equals(ZERO_PAGE_KEY) || !targetIndex.matches(p, key)) continue;
        const k = key.toString('latin1');
        if (seen.has(k)) continue; // one cache entry per content is enough
        seen.add(k);
        out.push(p);
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Inserts the given pages of `path` into the context's cache, in order. Returns pages inserted. */
export function seedCache(ctx: CodecContext, path: string, pages: readonly number[]): number {
  const fd = openSync(path, 'r');
  const page = Buffer.alloc(PAGE);
  const key = new Uint32Array(DIGEST_WORDS);
  let n = 0;
  try {
    for (const p of pages) {
      if (readSync(fd, page, 0, PAGE, p * PAGE) !== PAGE) continue;
      digest(page, key);
      ctx.cache.insert(page, 0, PAGE, key);
      n++;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** A relay receiver that accepts content the target holds (src/relay/transport/receiver.ts ReceiverRelay.seed). */
export interface SeedSink {
  seed(data: Buffer): { added: number; full: boolean };
}

/**
 * The seedable pages of a target volume, in page order, as full batches of `batchPages` pages (the
 * last one shorter): non-zero, distinct contents, known to the index and still holding the content
 * it indexed (a page changed since only costs a miss). The yielded buffer is reused: consume it
 * before asking for the next.
 */
function* seedBatches(volumePath: string, index: PageIndex, batchPages: number): Generator<Buffer> {
  const fd = openSync(volumePath, 'r');
  const seen = new Set<string>();
  const batch = Buffer.alloc(batchPages * PAGE);
  let inBatch = 0;
  try {
    for (let p = 0; p < index.pages; p++) {
      const key = index.key(p);
      if (!index.known(p) || key.equals(ZERO_PAGE_KEY)) continue;
      const k = key.toString('latin1');
      if (seen.has(k)) continue;
      const page = batch.subarray(inBatch * PAGE, (inBatch + 1) * PAGE);
      if (readSync(fd, page, 0, PAGE, p * PAGE) !== PAGE || !pageKey(page).equals(key)) continue; // changed since indexed
      seen.add(k);
      if (++inBatch === batchPages) {
        yield batch;
        inBatch = 0;
      }
    }
    if (inBatch) yield batch.subarray(0, inBatch * PAGE);
  } finally {
    closeSync(fd);
  }
}

/**
 * Feeds the non-zero pages of the target volume that its index knows (distinct contents, in page
 * order) to a relay receiver, which announces them to its senders: from then on KubeVirt's NBD
 * disk stream sends those blocks as references. Returns how many pages were added.
 */
export function seedReceiver(sink: SeedSink, volumePath: string, index: PageIndex, batchPages = 1024): number {
  let added = 0;
  for (const batch of seedBatches(volumePath, index, batchPages)) {
    const r = sink.seed(batch);
    added += r.added;
    if (r.full) break;
  }
  return added;
}

/**
 * Streams the same pages as seedReceiver to a receiver relay's seed intake (`relay receive
 * --seed-listen`) over TCP, and returns what the relay reports it added. The target agent does
 * this when its pre-copy is done, so that KubeVirt's final disk mirror finds those blocks at the
 * receiver.
 */
export async function streamSeeds(host: string, port: number, volumePath: string, index: PageIndex, timeoutMs = 600_000): Promise<{ pages: number; added: number; full: boolean }> {
  const s = connect({ host, port });
  s.setTimeout(timeoutMs, () => s.destroy(new Error('seed intake timed out')));
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  const reply = new Promise<string>((resolve, reject) => {
    let buf = '';
    s.on('data', (d: Buffer) => { buf += d.toString('utf8'); });
    s.on('end', () => resolve(buf));
    s.on('error', reject);
  });
  let pages = 0;
  for (const batch of seedBatches(volumePath, index, 256)) {
    pages += batch.length / PAGE;
    // A copy: the socket may still hold it when the generator refills its buffer.
    if (!s.write(Buffer.from(batch))) await new Promise<void>((r) => s.once('drain', r));
  }
  s.end();
  const r = JSON.parse((await reply).trim() || '{}') as { added?: number; full?: boolean };
  return { pages, added: Number(r.added ?? 0), full: r.full === true };
}
