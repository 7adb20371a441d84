// State shared by all sessions of one relay pair (or one offline encode/decode run).
import { ContentCache, DigestSet } from './cache.ts';
import type { DigestStore } from './digest-store.ts';

export const PAGE_SIZE = 4096;

export interface CodecContext {
  cache: ContentCache;
  /**
   * The session whose batch is open. Cache inserts must reach the receiver in the order they were
   * made, so before another session encodes anything, the open batch is emitted first.
   */
  active?: { emitPending(): void };
  /** Sender: digests of seeded content the receiver announced (sent as references). */
  remoteSeeds?: DigestSet;
  /** Receiver: seeded content (never evicted; bounded), resolved like cache references. */
  seeds?: DigestStore;
}

export const DEFAULT_CACHE_BYTES = 256 << 20;

/** prefault false: the cache's memory is faulted in as it fills (offline runs; see ContentCache). */
export function createContext(cacheBytes = DEFAULT_CACHE_BYTES, opts: { prefault?: boolean } = {}): CodecContext {
  return { cache: new ContentCache(cacheBytes, PAGE_SIZE, opts.prefault ?? true) };
}

export { DigestSet };
