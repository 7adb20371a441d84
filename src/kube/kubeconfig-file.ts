// A client for a peer cluster whose kubeconfig is a file, e.g. a Secret mounted into the site
// gateway's pod (gateway.peers[].kubeconfigSecret). The kubelet replaces a mounted Secret's files
// atomically (a symlink swap), so the file is stat'ed on every use and re-read when it changed;
// an unchanged content keeps the client. It gets the refusals of a Site kubeconfig
// (kubeConfigFromString: no exec, auth-provider, token or certificate files, or unverified API
// servers). Its contents never reach logs or errors.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ClusterClientError, kubeConfigFromString } from './clusters.ts';
import { KubeClient } from './client.ts';
import type { RestClientOptions } from './rest.ts';
import { logger, type Logger } from '../util/log.ts';

export interface KubeconfigFileClientOptions {
  path: string;
  /** Names the cluster in the client's metrics and logs. */
  clusterName: string;
  clientOptions?: RestClientOptions;
  log?: Logger;
}

export class KubeconfigFileClient {
  readonly #o: KubeconfigFileClientOptions;
  readonly #log: Logger;
  #stamp = '';
  #digest = '';
  #client: KubeClient | undefined;
  /** How often a changed file was loaded into a new client (for tests and diagnostics). */
  loads = 0;

  constructor(o: KubeconfigFileClientOptions) {
    this.#o = o;
    this.#log = o.log ?? logger('kubeconfig-file');
  }

  get #what(): string { return `kubeconfig file ${this.#o.path}`; }

  /**
   * The client for the file's current kubeconfig. Throws ClusterClientError: KubeconfigMissing
   * while the file does not exist (or cannot be read), KubeconfigInvalid for a refused or broken
   * kubeconfig (until the file changes again; the previous client is not used meanwhile).
   */
  async client(): Promise<KubeClient> {
    let stamp: string;
    try {
      const st = await stat(this.#o.path);
      stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      throw this.#missing(err);
    }
    if (stamp === this.#stamp && this.#client) return this.#client;
    let text: string;
    try {
      text = await readFile(this.#o.path, 'utf8');
    } catch (err) {
      throw this.#missing(err);
    }
    const digest = createHash('sha256').update(text).digest('hex');
    if (digest === this.#digest && this.#client) {
      this.#stamp = stamp;
      return this.#client;
    }
    this.#drop();
    const kc = kubeConfigFromString(text, this.#what); // throws ClusterClientError, never quoting the file
    const client = new KubeClient(kc, this.#o.clusterName, this.#o.clientOptions);
    this.#client = client;
    this.#stamp = stamp;
    this.#digest = digest;
    this.loads++;
    this.#log.info('loaded peer kubeconfig file', { cluster: this.#o.clusterName, file: this.#o.path, server: client.rest.server });
    return client;
  }

  /** The file is gone or unreadable: the client made from it goes too. */
  #missing(err: unknown): ClusterClientError {
    this.#drop();
    return new ClusterClientError('KubeconfigMissing', `${this.#what}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }

  #drop(): void {
    if (this.#client) void this.#client.rest.close();
    this.#client = undefined;
    this.#stamp = '';
    this.#digest = '';
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    await c?.rest.close();
  }
}
