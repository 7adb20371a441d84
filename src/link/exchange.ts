// What a gateway publishes about itself, and how it reads its peer's. This is the only channel
// between the two sites' gateways besides the tunnel, and it carries public keys only.
//
// In a cluster each gateway writes a ConfigMap `cloudnet-gateway` in its own namespace (see
// kube-exchange.ts) and reads the peer's through the peer cluster's API (the Site's kubeconfig);
// the operator's Site controller reads the local one to fill Site.status. For tests and
// bare-metal runs the same document is a JSON file (FileExchange).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LinkStatus } from './status.ts';

export interface PublishedGatewayState {
  site: string;
  publicKey: string;
  /** Set while this gateway is rotating: the key it will switch to once the peer has staged it. */
  nextPublicKey?: string;
  /** The peer's announced next keys that this gateway has staged (the rotation acknowledgement). */
  stagedPeerKeys?: string[];
  /** Public keys this gateway accepts for its peer (diagnostics for PeerKeyMismatch on the other side). */
  peerKeys?: string[];
  /** host:port of this gateway's WireGuard endpoint. */
  endpoint?: string;
  tunnelAddress?: string;
  networks?: string[];
  /** The peer's networks this gateway routes through the tunnel (the route agents route them here). */
  peerNetworks?: string[];
  /** This gateway node's address on the site network: where the other nodes route the peer's networks. */
  nodeAddress?: string;
  probePort?: number;
  link?: LinkStatus;
  /** ISO time of this write: a reader treats an old document as "gateway not reporting". */
  updatedAt: string;
}

export interface GatewayExchange {
  publish(state: PublishedGatewayState): Promise<void>;
  readPeer(): Promise<PublishedGatewayState | undefined>;
}

async function readJson(path: string): Promise<PublishedGatewayState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PublishedGatewayState;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** Reads a published state file (for tests and for an operator co-located with the gateway). */
export function readStateFile(path: string): Promise<PublishedGatewayState | undefined> {
  return readJson(path);
}

export class FileExchange implements GatewayExchange {
  readonly localPath: string;
  readonly peerPath: string | undefined;
  constructor(localPath: string, peerPath?: string) {
    this.localPath = localPath;
    this.peerPath = peerPath;
  }

  async publish(state: PublishedGatewayState): Promise<void> {
    await mkdir(dirname(this.localPath), { recursive: true });
    const tmp = `${this.localPath}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 2));
    await rename(tmp, this.localPath);
  }

  async readPeer(): Promise<PublishedGatewayState | undefined> {
    return this.peerPath ? readJson(this.peerPath) : undefined;
  }
}
