// Public surface of the runtime (controller-runtime's contract in TypeScript).
export * from './types.ts';
export * from './rest.ts';
export * from './client.ts';
export * from './merge-patch.ts';
export * from './clock.ts';
export * from './backoff.ts';
export * from './ratelimit.ts';
export * from './workqueue.ts';
export * from './informer.ts';
export * from './cached-reader.ts';
export * from './controller.ts';
export * from './leader.ts';
export * from './events.ts';
export * from './metrics.ts';
export { ClusterClients, ClusterClientError, kubeConfigFromString, type SecretRef, type ClusterClientErrorReason, type ClusterClientsOptions } from './clusters.ts';
export * from './manager.ts';
