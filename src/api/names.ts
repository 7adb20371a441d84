// Limits on names and label values that CloudNet derives from user-chosen names (a WanMigration
// may be named with up to 253 characters), and the one rule that brings a derived name within
// its limit: keep a readable prefix and append a hash of the whole input, so the result is
// deterministic (every reconcile and every replica derives the same name) and two long inputs
// that share a prefix still get different names.
import { createHash } from 'node:crypto';

/** A label value (and anything KubeVirt copies into one, such as a VMIM name): at most 63 characters. */
export const LABEL_VALUE_MAX = 63;
/** A DNS-1123 label (namespace names, Service names): at most 63 characters. */
export const DNS_LABEL_MAX = 63;
/** A DNS-1123 subdomain (most object names): at most 253 characters. */
export const OBJECT_NAME_MAX = 253;

/** Hex characters of the SHA-256 kept in a shortened name: 40 bits, enough to keep long names apart. */
const HASH_CHARS = 10;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, HASH_CHARS);
}

/** `s` cut to at most `max` characters, without a trailing character that may not end a name. */
export function truncateName(s: string, max: number): string {
  return s.slice(0, Math.max(0, max)).replace(/[^A-Za-z0-9]+$/, '');
}

/**
 * `s` itself when it fits in `max` characters; otherwise a prefix of it, "-" and a hash of all of
 * it, `max` characters at most. `s` is expected to be a valid name already (it starts with an
 * alphanumeric character); the result then is one too: the prefix never ends with "-" or ".".
 */
export function boundedName(s: string, max: number): string {
  if (s.length <= max) return s;
  const hash = shortHash(s);
  const head = truncateName(s, max - HASH_CHARS - 1);
  return head ? `${head}-${hash}` : hash.slice(0, max);
}

/** A label value derived from a name: the name itself up to 63 characters, else shortened and hashed. */
export function labelValue(s: string): string {
  return boundedName(s, LABEL_VALUE_MAX);
}
