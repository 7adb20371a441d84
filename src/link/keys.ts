// WireGuard key pairs generated in-process (X25519 from node:crypto, no `wg genkey` subprocess) and
// encoded the way WireGuard spells them: base64 of the raw 32-byte key. The private half is wrapped
// in `WgPrivateKey`, whose JSON and inspect forms are "[redacted]", so a private key cannot reach a
// log line, an Event or a published state document by accident, even when nested in another object.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';

const KEY_BYTES = 32;
// PKCS#8 / SPKI DER prefixes for X25519 (RFC 8410): the raw key is the last 32 bytes.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const REDACTED = '[redacted]';

/** A WireGuard private key. Only `reveal()` yields the base64 text; every other view is redacted. */
export class WgPrivateKey {
  readonly #base64: string;

  constructor(base64: string) {
    if (!isWgKey(base64)) throw new Error('invalid WireGuard private key (want base64 of 32 bytes)');
    this.#base64 = base64;
  }

  /** The base64 key, for writing to `wg` through a pipe or into the key Secret. Never log it. */
  reveal(): string { return this.#base64; }

  publicKey(): string { return publicKeyOf(this); }

  equals(other: WgPrivateKey): boolean { return other.#base64 === this.#base64; }

  toJSON(): string { return REDACTED; }
  toString(): string { return REDACTED; }
  [inspect.custom](): string { return REDACTED; }
}

export interface WgKeyPair {
  privateKey: WgPrivateKey;
  publicKey: string;
}

/** True for a well-formed WireGuard key: canonical base64 of exactly 32 bytes (44 chars, one '='). */
export function isWgKey(s: string): boolean {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(s)) return false;
  return Buffer.from(s, 'base64').length === KEY_BYTES;
}

export function generateKeyPair(): WgKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const raw = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-KEY_BYTES);
  const sk = new WgPrivateKey(raw.toString('base64'));
  return { privateKey: sk, publicKey: sk.publicKey() };
}

function privateKeyObject(sk: WgPrivateKey): KeyObject {
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(sk.reveal(), 'base64')]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

/** The public key for a private key, exactly as `wg pubkey` prints it (X25519 clamps internally). */
export function publicKeyOf(sk: WgPrivateKey): string {
  const spki = createPublicKey(privateKeyObject(sk)).export({ format: 'der', type: 'spki' });
  if (!spki.subarray(0, SPKI_X25519_PREFIX.length).equals(SPKI_X25519_PREFIX)) throw new Error('unexpected SPKI encoding');
  return spki.subarray(-KEY_BYTES).toString('base64');
}

/** Short, log-safe fingerprint of a public key, for messages ("key AbCdEfGh…"). */
export function keyFingerprint(publicKey: string): string {
  return `${publicKey.slice(0, 8)}…`;
}
