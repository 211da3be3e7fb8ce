/**
 * The counters of the server's UDP sessions (docs/PROTOCOL.md §20): every datagram of types `INIT`,
 * `FINISH` and `RECORD` that is dropped is counted by stage and reason, with the sessions opened and ended,
 * the `RETRY`s sent by cause and the half-open sessions now. They go into the `udp_stats` log line at
 * shutdown ({@linkcode udpSessionLogFields}) and into `authchat_udp_dropped_total`
 * ({@linkcode udpSessionDropSamples}).
 *
 * @module
 */

import { ADMISSION_DROP_REASONS, type RetryCause } from "./udp_admission.ts";

/** Why an `INIT` was dropped: the admission's reasons, and the session layer's own. */
export const INIT_DROP_REASONS = [
  ...ADMISSION_DROP_REASONS,
  /** Admitted, but the key exchange refused it (a low-order share). */
  "bad_init",
  /** Admitted, but the half-open table is full: nothing allocated. */
  "half_open_full",
  /** Admitted, but its source address has its most half-open sessions (`max_unauthenticated_per_ip`). */
  "half_open_per_address",
  /** The server is shutting down. */
  "stopping",
] as const;

/** Why a `FINISH` was dropped. */
export const FINISH_DROP_REASONS = [
  "malformed",
  "wrong_connection",
  "bad_finish",
  "duplicate",
  /** No session (half-open or established) has its connection id (so is every FINISH once stopping). */
  "unknown_connection",
  /** From another address or port than the admitted `INIT`'s: a session never moves (§20.12). */
  "moved",
] as const;

/** Why a `RECORD` was dropped. */
export const RECORD_DROP_REASONS = [
  "truncated",
  "malformed",
  "wrong_connection",
  "replayed",
  "out_of_window",
  "forged",
  /** Authenticated, but its payload is no packet of the reliable layer (counted when its session ends). */
  "bad_packet",
  /** Its session's stream has ended. */
  "closed",
  /** No session has its connection id. */
  "unknown_connection",
  /** Its session's `FINISH` has not arrived: no record is opened before (§20.5). */
  "not_established",
  /** From another address or port than its session's: not opened, and the session does not move (§20.12). */
  "moved",
] as const;

/** Why a session ended: its stream's reasons. */
export const SESSION_END_REASONS = ["closed", "peer_closed", "dead", "failed"] as const;

/** A reason of {@linkcode INIT_DROP_REASONS}. */
export type InitDropReason = typeof INIT_DROP_REASONS[number];
/** A reason of {@linkcode FINISH_DROP_REASONS}. */
export type FinishDrop = typeof FINISH_DROP_REASONS[number];
/** A reason of {@linkcode RECORD_DROP_REASONS}. */
export type RecordDrop = typeof RECORD_DROP_REASONS[number];
/** A reason of {@linkcode SESSION_END_REASONS}. */
export type SessionEnd = typeof SESSION_END_REASONS[number];

/** The counters. */
export interface UdpSessionStats {
  /** Dropped `INIT`s by reason. */
  init: Record<InitDropReason, number>;
  /** Dropped `FINISH`es by reason. */
  finish: Record<FinishDrop, number>;
  /** Dropped `RECORD`s by reason. */
  record: Record<RecordDrop, number>;
  /** `RETRY`s sent, by cause. */
  retries: Record<RetryCause, number>;
  /** `INIT`s admitted that opened a half-open session. */
  admitted: number;
  /** `ACCEPT` datagrams sent (first sends and repeats). */
  acceptsSent: number;
  /** `ACCEPT` datagrams held back by the amplification bound (sent later or never). */
  acceptsDeferred: number;
  /** Half-open sessions forgotten because their `FINISH` did not come in time. */
  halfOpenExpired: number;
  /** Sessions established (a valid `FINISH`). */
  opened: number;
  /** Sessions ended, by reason. */
  ended: Record<SessionEnd, number>;
  /** Half-open sessions now. */
  halfOpen: number;
  /** Established sessions now. */
  established: number;
  /** The proof-of-work difficulty asked now. */
  difficulty: number;
}

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/**
 * Counters all at zero.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyUdpSessionStats } from "./udp_session_stats.ts";
 * assert(emptyUdpSessionStats().record.unknown_connection === 0);
 * ```
 *
 * @returns Fresh counters.
 */
export function emptyUdpSessionStats(): UdpSessionStats {
  return {
    init: zeros(INIT_DROP_REASONS),
    finish: zeros(FINISH_DROP_REASONS),
    record: zeros(RECORD_DROP_REASONS),
    retries: { no_cookie: 0, difficulty_raised: 0 },
    admitted: 0,
    acceptsSent: 0,
    acceptsDeferred: 0,
    halfOpenExpired: 0,
    opened: 0,
    ended: zeros(SESSION_END_REASONS),
    halfOpen: 0,
    established: 0,
    difficulty: 0,
  };
}

/**
 * A deep copy of the counters.
 *
 * @param stats The counters.
 * @returns A copy.
 */
export function copyUdpSessionStats(stats: UdpSessionStats): UdpSessionStats {
  return {
    ...stats,
    init: { ...stats.init },
    finish: { ...stats.finish },
    record: { ...stats.record },
    retries: { ...stats.retries },
    ended: { ...stats.ended },
  };
}

/**
 * The counters as flat log fields, `session_`-prefixed beside the rendezvous's: each drop reason as
 * `session_drop_<stage>_<reason>` (only those that happened, so the line stays short), and the rest always.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyUdpSessionStats, udpSessionLogFields } from "./udp_session_stats.ts";
 * const stats = emptyUdpSessionStats();
 * stats.record.forged = 2;
 * const fields = udpSessionLogFields(stats);
 * assert(fields.session_drop_record_forged === 2 && fields.session_drops === 2);
 * assert(!("session_drop_record_replayed" in fields));
 * ```
 *
 * @param stats The counters.
 * @returns Fields for the `udp_stats` line.
 */
export function udpSessionLogFields(stats: UdpSessionStats): Record<string, number> {
  const fields: Record<string, number> = {
    session_opened: stats.opened,
    session_admitted: stats.admitted,
    session_half_open: stats.halfOpen,
    session_established: stats.established,
    session_half_open_expired: stats.halfOpenExpired,
    session_accepts_sent: stats.acceptsSent,
    session_accepts_deferred: stats.acceptsDeferred,
    session_difficulty: stats.difficulty,
  };
  for (const [cause, n] of Object.entries(stats.retries)) fields[`session_retry_${cause}`] = n;
  for (const [reason, n] of Object.entries(stats.ended)) fields[`session_ended_${reason}`] = n;
  let drops = 0;
  for (const [stage, reason, n] of dropEntries(stats)) {
    drops += n;
    if (n > 0) fields[`session_drop_${stage}_${reason}`] = n;
  }
  fields.session_drops = drops;
  return fields;
}

/**
 * Every drop counter as `[stage, reason, count]`.
 *
 * @param stats The counters.
 * @returns One entry per stage and reason, zeros included.
 */
export function dropEntries(stats: UdpSessionStats): [string, string, number][] {
  const out: [string, string, number][] = [];
  for (const stage of ["init", "finish", "record"] as const) {
    for (const [reason, n] of Object.entries(stats[stage])) out.push([stage, reason, n]);
  }
  return out;
}
