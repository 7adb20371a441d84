// The live relays' public entry: the sender and receiver of a relay pair, their link security,
// their metrics and stats, the registration of intercepted flows, and the pure reader side of the
// sender's stats (the progress a migration's sessions show). The link's framing and handshake stay inside.
export { SenderRelay } from './sender.ts';
export type { ListenSpec, SenderOptions } from './sender.ts';
export { ReceiverRelay } from './receiver.ts';
export type { ReceiverOptions } from './receiver.ts';
export { startSeedIntake } from './seed-intake.ts';
export type { SeedIntake } from './seed-intake.ts';
export { loadTls, parseHostPort } from './net-util.ts';
export type { HostPort, LinkSecurity } from './net-util.ts';
export { relayRegistry } from './metrics.ts';
export { serveStats, writeStatsFile } from './stats-server.ts';
export type { StatsSource } from './stats-server.ts';

// Reading a sender's /stats (GET, or its --stats-file).
export { etaSeconds, migrationProgress, parseSenderStats, reductionRatio } from './progress.ts';
export type { EtaInput, RelaySession, SenderStats } from './progress.ts';

// Registered flows: the operator's registration API, the per-flow listeners, the interceptor port.
export { serveApi } from './api.ts';
export type { ApiListen, ApiOptions } from './api.ts';
export { FlowRegistry } from './registry.ts';
export type { RegisteredFlow, RegistrationState } from './registry.ts';
export { parseRegistration, RegistrationError } from './flows.ts';
export type { Compression, FlowInterceptor, FlowOwner, FlowSettings, InterceptFlow, Registration, SessionOpen } from './flows.ts';
