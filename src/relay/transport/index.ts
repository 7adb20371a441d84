// The live relays' public entry: the sender and receiver of a relay pair, their link security,
// their metrics and stats, and the pure reader side of the sender's stats (which session carries
// which migration, and the progress it shows). The link's framing and handshake stay inside.
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
export { attributeSessions, DEFAULT_CLOCK_SLACK_MS, ownedBy } from './session-owners.ts';
export type { Claimant, SessionRef } from './session-owners.ts';
