// Where a gateway keeps its private keys. In a cluster that is the Secret `cloudnet-gateway-key`
// (see kube-store.ts); for tests and bare-metal runs it is a 0600 JSON file. Both hold the current
// key and, during a rotation, the next one, so a gateway that restarts mid-rotation resumes it.
// Only the gateway reads this; everything that leaves it is a public key.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, WgPrivateKey } from './keys.ts';

export const KEY_SECRET_NAME = 'cloudnet-gateway-key';
/** Data keys inside the Secret (and the file). */
export const KEY_FIELD = 'private-key';
export const NEXT_KEY_FIELD = 'next-private-key';

export interface StoredKeys {
  current: WgPrivateKey;
  /** Present between "announce" and "switch" of a rotation (see rotation.ts). */
  next?: WgPrivateKey;
}

export interface KeyStore {
  load(): Promise<StoredKeys | undefined>;
  save(keys: StoredKeys): Promise<void>;
}

/** Loads the stored keys, generating and saving a fresh pair on first start. */
export async function loadOrCreateKeys(store: KeyStore): Promise<StoredKeys> {
  const existing = await store.load();
  if (existing) return existing;
  const keys: StoredKeys = { current: generateKeyPair().privateKey };
  await store.save(keys);
  return keys;
}

export function encodeKeys(keys: StoredKeys): Record<string, string> {
  return { [KEY_FIELD]: keys.current.reveal(), ...(keys.next ? { [NEXT_KEY_FIELD]: keys.next.reveal() } : {}) };
}

export function decodeKeys(data: Record<string, string | undefined>): StoredKeys | undefined {
  const cur = data[KEY_FIELD]?.trim();
  if (!cur) return undefined;
  const next = data[NEXT_KEY_FIELD]?.trim();
  return { current: new WgPrivateKey(cur), ...(next ? { next: new WgPrivateKey(next) } : {}) };
}

/** A JSON file with mode 0600, replaced atomically so a crash never leaves half a key. */
export class FileKeyStore implements KeyStore {
  readonly path: string;
  constructor(path: string) { this.path = path; }

  async load(): Promise<StoredKeys | undefined> {
    let text: string;
    try { text = await readFile(this.path, 'utf8'); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return decodeKeys(JSON.parse(text) as Record<string, string>);
  }

  async save(keys: StoredKeys): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, JSON.stringify(encodeKeys(keys)), { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }
}
