// Which relay session carries which migration. KubeVirt's migration stream carries no migration
// ID, and the sender relay only knows the listener a connection came in on and when it opened, so
// sessions are attributed by time and listener, and an attribution once made is kept:
//  - a session can belong to a migration only if that migration was already migrating memory when
//    the session opened (within `slackMs` of clock skew between the relay's host and the operator);
//  - a migration has at most one session per relay listener (one memory stream on `mem`, one disk
//    stream on `disk`); once it holds one, later sessions on that listener are someone else's;
//  - a session is attributed only when exactly one migration qualifies. Two migrations whose
//    streams start before either is attributed are ambiguous; their progress then stays
//    phase-based rather than showing another VM's bytes. `listeners` per migration (one listener
//    per migration) removes the ambiguity.
// Pure, apart from the `owners` map it updates.

export interface SessionRef {
  /** Unique per relay and session (ids restart with the relay, so it includes the start time). */
  key: string;
  listener: string;
  startedMs: number;
}

export interface Claimant {
  migrationID: string;
  /** When the migration entered MigratingMemory (status.phaseStartTime). */
  memoryStartMs: number;
  /** Listeners this migration's streams may use; undefined: any. */
  listeners?: readonly string[];
}

export const DEFAULT_CLOCK_SLACK_MS = 2000;

/**
 * Updates `owners` (session key → migration ID) for the sessions one relay reports now: forgets
 * sessions the relay no longer lists, then attributes new ones in the order they opened.
 */
export function attributeSessions(sessions: readonly SessionRef[], claimants: readonly Claimant[], owners: Map<string, string>, slackMs = DEFAULT_CLOCK_SLACK_MS): void {
  const listed = new Set(sessions.map((s) => s.key));
  const listenerOf = new Map(sessions.map((s) => [s.key, s.listener]));
  for (const k of owners.keys()) if (!listed.has(k)) owners.delete(k);
  const held = new Set<string>(); // `${migrationID}\n${listener}`
  for (const [k, id] of owners) held.add(`${id}\n${listenerOf.get(k)}`);
  for (const s of [...sessions].sort((a, b) => a.startedMs - b.startedMs)) {
    if (owners.has(s.key)) continue;
    const fits = claimants.filter((c) => c.memoryStartMs - slackMs <= s.startedMs
      && (!c.listeners || c.listeners.includes(s.listener))
      && !held.has(`${c.migrationID}\n${s.listener}`));
    if (fits.length !== 1) continue;
    owners.set(s.key, fits[0].migrationID);
    held.add(`${fits[0].migrationID}\n${s.listener}`);
  }
}

/** Session keys owned by one migration. */
export function ownedBy(owners: ReadonlyMap<string, string>, migrationID: string): Set<string> {
  const out = new Set<string>();
  for (const [k, id] of owners) if (id === migrationID) out.add(k);
  return out;
}
