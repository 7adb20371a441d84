// Registered flows: which migration owns which intercepted TCP flow, and with which relay
// settings. The operator registers a migration's flows (the target node address and migration
// ports from the target VMI's status) through the sender's API (api.ts); the gateway redirects
// each registered flow to a local port of its own (no SO_ORIGINAL_DST in Node: the port names the
// flow); the session's OPEN carries the original destination, which the receiver connects to.
import { F } from '../codec/index.ts';
import type { HostPort } from './net-util.ts';

/** The WanMigration that registered a flow: every session of the flow is attributed to it. */
export interface FlowOwner {
  namespace: string;
  name: string;
  /** status.migrationID of the WanMigration (its UID). */
  migrationID: string;
}

export type Compression = 'None' | 'Zstd';

/** A migration's relay settings (WanMigration spec.relay) plus what the operator knows of the stream. */
export interface FlowSettings {
  compression: Compression;
  dedup: boolean;
  deltaPages: boolean;
  /** Newest part of the relay's shared cache the migration may use, MiB; 0: none. */
  cacheSizeMiB: number;
  /** The stream is encrypted end to end (KubeVirt migration TLS): forward it opaquely. */
  opaque: boolean;
}

export interface Registration {
  owner: FlowOwner;
  /** Original destinations (IPv4 host, port): one flow each. */
  destinations: HostPort[];
  settings: FlowSettings;
}

/** One redirect the interceptor programs: the flow to `destination` goes to the local port. */
export interface InterceptFlow {
  destination: HostPort;
  localPort: number;
}

/** Programs the gateway's redirects (src/link's nftables interceptor, wired by the CLI). */
export interface FlowInterceptor {
  /** Makes the redirects exactly `flows` (atomically): anything else passes through untouched. */
  apply(flows: readonly InterceptFlow[]): Promise<void>;
  /** Removes every redirect. */
  close(): Promise<void>;
}

/** A session's OPEN frame: the codec's OpenInfo plus the intercepted flow it carries. */
export interface SessionOpen extends F.OpenInfo {
  /** HOST:PORT the flow was addressed to: the receiver connects there. */
  destination?: string;
  owner?: FlowOwner;
}

export class RegistrationError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ID = /^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const MAX_DESTINATIONS = 16;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string): never {
  throw new RegistrationError(400, message);
}

export function isMigrationID(s: string): boolean {
  return ID.test(s);
}

/** Validates a registration body (PUT /v1/registrations/{migrationID}). */
export function parseRegistration(body: unknown, migrationID: string): Registration {
  if (!isMigrationID(migrationID)) bad('bad migration ID');
  if (!isObj(body)) bad('body must be a JSON object');
  const { namespace, name, destinations, settings } = body;
  if (typeof namespace !== 'string' || !NAME.test(namespace)) bad('namespace must be a DNS-1123 name');
  if (typeof name !== 'string' || !NAME.test(name)) bad('name must be a DNS-1123 name');
  if (!Array.isArray(destinations) || destinations.length === 0 || destinations.length > MAX_DESTINATIONS) bad(`destinations must list 1 to ${MAX_DESTINATIONS} flows`);
  const dests = destinations.map((d): HostPort => {
    if (!isObj(d) || typeof d.host !== 'string' || !IPV4.test(d.host)) bad('each destination needs an IPv4 host');
    if (typeof d.port !== 'number' || !Number.isInteger(d.port) || d.port < 1 || d.port > 65535) bad('each destination needs a port 1..65535');
    return { host: d.host, port: d.port };
  });
  const keys = new Set(dests.map((d) => `${d.host}:${d.port}`));
  if (keys.size !== dests.length) bad('destinations repeat');
  if (!isObj(settings)) bad('settings must be an object');
  const { compression, dedup, deltaPages, cacheSizeMiB, opaque } = settings;
  if (compression !== 'None' && compression !== 'Zstd') bad('settings.compression must be None or Zstd');
  if (typeof dedup !== 'boolean' || typeof deltaPages !== 'boolean' || typeof opaque !== 'boolean') bad('settings.dedup, deltaPages and opaque must be booleans');
  if (typeof cacheSizeMiB !== 'number' || !Number.isInteger(cacheSizeMiB) || cacheSizeMiB < 0 || cacheSizeMiB > 65536) bad('settings.cacheSizeMiB must be an integer 0..65536');
  return { owner: { namespace, name, migrationID }, destinations: dests, settings: { compression, dedup, deltaPages, cacheSizeMiB, opaque } };
}

export const flowKey = (d: HostPort): string => `${d.host}:${d.port}`;
