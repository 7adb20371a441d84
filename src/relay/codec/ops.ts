// The relay's op stream: what the sender emits per batch (before zstd) and the receiver replays.
// Page ops carry their own addressing so the receiver can keep the per-page "previous version"
// map in lockstep without parsing the QEMU stream itself.

export const OP_RAW = 0x01; // varint len, bytes: passed through verbatim
export const OP_CHUNK_LIT = 0x02; // varint len, bytes: generic chunk, inserted into the cache
export const OP_CHUNK_REF = 0x03; // cache reference (below): generic chunk from the cache
export const OP_CHUNK_SEED = 0x04; // 16-byte SHA-256 digest: generic chunk from the receiver's seeds

// A cache reference is [varint slot][le32 fp0][le32 fp1]: the slot the entry has on both sides
// (lockstep FIFO) and its 64-bit fingerprint, which the receiver checks against the one it
// computed from the bytes it holds.

// QEMU RAM page records: op, then the record header exactly as QEMU sent it
// (be64 addr|flags, and u8 len + idstr unless CONTINUE), then the payload encoding.
export const OP_QPAGE_LIT = 0x10; // + page bytes
export const OP_QPAGE_REF = 0x11; // + cache reference
export const OP_QPAGE_DELTA = 0x12; // + le32 check (first fingerprint word of the result) + varint len + XOR/RLE delta
export const OP_QZERO = 0x13; // + the record's fill byte (QEMU's ZERO record)
export const OP_QOTHER = 0x14; // + varint len + payload of a QEMU XBZRLE/compressed record (page forgotten)
export const OP_QPAGE_SEED = 0x15; // + 16-byte SHA-256 digest of seeded content (page forgotten)

// Keyed blocks (NBD writes): op, varint block index, payload as for QEMU pages.
export const OP_KPAGE_LIT = 0x20;
export const OP_KPAGE_REF = 0x21;
export const OP_KPAGE_DELTA = 0x22;
export const OP_KPAGE_SEED = 0x23;

export const ENC_LIT = 0;
export const ENC_REF = 1;
export const ENC_DELTA = 2;
export const ENC_SEED = 3;

// RAM save flags (QEMU migration/ram.c).
export const RAM_ZERO = 0x02;
export const RAM_MEM_SIZE = 0x04;
export const RAM_PAGE = 0x08;
export const RAM_EOS = 0x10;
export const RAM_CONTINUE = 0x20;
export const RAM_XBZRLE = 0x40;
export const RAM_COMPRESS = 0x100;
export const RAM_MULTIFD_FLUSH = 0x200;

export const QEVM_MAGIC = 0x5145564d;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_EXT_REQUEST_MAGIC = 0x21e41c71;
export const NBD_CMD_WRITE = 1;

/** Upper bounds that a receiver enforces on a batch, so a corrupt frame cannot exhaust memory. */
export const MAX_BATCH_RAW = 64 << 20;
export const MAX_BATCH_OPS = 16 << 20;
/** Largest page index tracked for deltas (1 TiB of 4 KiB pages). */
export const MAX_PAGE_INDEX = 1 << 28;

export const TECHNIQUES = ['zero', 'dedup', 'delta', 'literal', 'structure', 'generic_dedup', 'generic_literal'] as const;
export type Technique = (typeof TECHNIQUES)[number];
export const T_ZERO = 0;
export const T_DEDUP = 1;
export const T_DELTA = 2;
export const T_LITERAL = 3;
export const T_STRUCTURE = 4;
export const T_GENERIC_DEDUP = 5;
export const T_GENERIC_LITERAL = 6;
