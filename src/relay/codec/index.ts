// The relay codec's one public entry. Everything outside src/relay/codec (the live relays in
// transport/, the offline tools, the storage pre-copy that runs its NBD stream through the same
// codec) imports from here, so the files behind it can be rearranged without touching them.
// Op codes, the cache's internals and the parsers stay private: the wire format is this folder's
// business.

// One session's encoder and decoder, and the state all sessions of a relay pair share.
export { SessionEncoder, parseStreamMode, STREAM_MODES } from './encoder/session-encoder.ts';
export type { Batch, EncoderOptions, StreamMode } from './encoder/session-encoder.ts';
export { SessionDecoder } from './decoder.ts';
export { createContext, DEFAULT_CACHE_BYTES, PAGE_SIZE } from './context.ts';
export type { CodecContext } from './context.ts';
export { DecodeError } from './bytes.ts';

// Batches of ops: the compressed container each data frame carries, and the sender's zstd level.
export { BatchUnpacker, batchHeader, batchInserts, METHOD_STORED, METHOD_ZSTD, packBatch, readBatchHeader, unpackBatch, zstdBound, zstdCompress, zstdCompressInto, zstdCompressView } from './batch.ts';
export { AdaptiveLevel, EFFORT_FULL, EFFORT_PASS, STEPS } from './adaptive.ts';

// Content identity: SHA-256 digests name seeded content (the storage agents' page index uses the
// same key); the 64-bit fingerprint finds cache candidates.
export { digest, DIGEST_WORDS, DigestSet, fingerprint } from './cache.ts';
export { DigestStore } from './digest-store.ts';

// Relay-to-relay frames (also the offline file format): F.F_DATA, F.FrameReader, F.Hello...
export * as F from './frames.ts';

// Per-session accounting, by technique, and the stop-and-copy advice drawn from its rounds.
export { SessionStats } from './stats.ts';
export type { RoundStats } from './stats.ts';
export { TECHNIQUES, T_DEDUP, T_DELTA, T_GENERIC_DEDUP, T_GENERIC_LITERAL, T_LITERAL, T_STRUCTURE, T_ZERO } from './ops.ts';
export type { Technique } from './ops.ts';
export { convergenceAdvice } from './convergence.ts';
export type { AdviceOptions, ConvergenceAdvice } from './convergence.ts';
