// Prometheus metrics of the relay (prom-client). One registry per process; per-session detail is
// in the JSON stats (see stats-server.ts) to keep label cardinality bounded.
import client from 'prom-client';

export const relayRegistry = new client.Registry();

export const bytesIn = new client.Counter({
  name: 'cloudnet_relay_input_bytes_total', help: 'Migration stream bytes entering the sender relay, by technique that carried them',
  labelNames: ['technique'], registers: [relayRegistry],
});
export const wireBytes = new client.Counter({
  name: 'cloudnet_relay_wire_bytes_total', help: 'Bytes of frames between the relays', labelNames: ['role', 'direction'], registers: [relayRegistry],
});
export const sessionsOpened = new client.Counter({
  name: 'cloudnet_relay_sessions_total', help: 'Migration sessions opened', labelNames: ['role'], registers: [relayRegistry],
});
export const sessionsClosed = new client.Counter({
  name: 'cloudnet_relay_sessions_closed_total', help: 'Migration sessions ended, by reason (ok, corrupt, truncated, cache-desync, version, peer-lost, ...)',
  labelNames: ['role', 'reason'], registers: [relayRegistry],
});
export const peersRejected = new client.Counter({
  name: 'cloudnet_relay_peer_rejected_total', help: 'Relay peer connections refused (unauthenticated, version, protocol)',
  labelNames: ['reason'], registers: [relayRegistry],
});
export const cacheLookups = new client.Counter({
  name: 'cloudnet_relay_cache_lookups_total', help: 'Content cache lookups by the sender', registers: [relayRegistry],
});
export const cacheHits = new client.Counter({
  name: 'cloudnet_relay_cache_hits_total', help: 'Content cache hits (content sent as a reference)', registers: [relayRegistry],
});
export const bufferedBytes = new client.Gauge({
  name: 'cloudnet_relay_buffered_bytes', help: 'Bytes held inside the relay (not yet on the link / not yet written downstream)',
  labelNames: ['role'], registers: [relayRegistry],
});
export const bufferedBytesMax = new client.Gauge({
  name: 'cloudnet_relay_buffered_bytes_max', help: 'Largest buffered byte count observed', labelNames: ['role'], registers: [relayRegistry],
});
export const compressionLevel = new client.Gauge({
  name: 'cloudnet_relay_zstd_level', help: 'Current adaptive zstd level (0 = stored)', registers: [relayRegistry],
});
/**
 * Label sets used on the data path, bound once: prom-client hashes a label object on every call,
 * which cost more than the counting itself at thousands of frames per second.
 */
export const hot = {
  senderWireOut: wireBytes.labels({ role: 'sender', direction: 'out' }),
  receiverWireIn: wireBytes.labels({ role: 'receiver', direction: 'in' }),
  senderBuffered: bufferedBytes.labels({ role: 'sender' }),
  receiverBuffered: bufferedBytes.labels({ role: 'receiver' }),
};
export const cacheMemory = new client.Gauge({
  name: 'cloudnet_relay_cache_memory_bytes', help: 'Memory of the content caches', labelNames: ['role'], registers: [relayRegistry],
});
