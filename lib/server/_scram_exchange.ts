/**
 * A session's SCRAM exchange from start to committed change: rate limits, the
 * lookup with a mock verifier for unknown users, failure accounting, and the
 * compare-and-swap write a correct proof allows.
 *
 * @module
 */

import { mockVerifier } from "../auth/scram_server.ts";
import type { ScramServer, ScramServerExchange } from "../auth/scram_server.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { ClientFirst } from "../codec/scram_messages.ts";
import { formatVerifier, parseVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import type { IdentityRecord } from "../store/user_store.ts";
import type { SessionContext } from "./session_context.ts";

/** What a proof is for. */
export type Purpose = "login" | "passwd" | "delete";

/** An exchange waiting for its PROOF. */
export interface PendingExchange {
  purpose: Purpose;
  exchange: ScramServerExchange;
  /** The account's stored name (or the name asked for, when unknown). */
  name: string;
  /** Lower-cased name. */
  key: string;
  /** Row id, or `null` for a mock exchange. */
  userId: number | null;
  /** The stored verifier the proof is checked against; later writes require it unchanged. */
  stored: string | null;
  /** PASSWD's new verifier, its form already checked. */
  newVerifier?: string;
  /** PASSWD's identity key backup, re-sealed under the new password. */
  newBackup?: string;
  /**
   * The account must change its password before anything else. Read with `stored`: only a change of the
   * verifier clears it, so a login committed against `stored` sees the flag as it is.
   */
  mustChangePassword: boolean;
}

/** What starts an exchange. */
export interface StartRequest {
  purpose: Purpose;
  /** The parsed client-first-message. */
  first: ClientFirst;
  /** The account name asked for, and its lower-cased key. */
  who: { name: string; key: string };
  /** Source address. */
  peerAddress: string;
  /** PASSWD's new verifier, its form already checked. */
  newVerifier?: string;
  /** PASSWD's identity key backup, re-sealed under the new password. */
  newBackup?: string;
}

/**
 * The error for a source in backoff.
 *
 * @param waitMs Milliseconds to wait.
 * @returns A `RATE_LIMITED` error.
 */
export function rateLimited(waitMs: number): ProtocolError {
  return new ProtocolError("RATE_LIMITED", `Too many attempts: retry in ${Math.ceil(waitMs / 1000)} s`, {
    retryAfterMs: waitMs,
  });
}

/**
 * Start an exchange; unknown users get a mock one that fails the same way.
 *
 * A name nobody has must not answer sooner or later than an account, or the time of a CHALLENGE tells
 * which names exist: both do the same steps in the same order, told to `ctx.trace` as they run: the
 * backoff check, the mock verifier (one HMAC) formatted as a decoy, one store lookup that returns the
 * account's credentials or the decoy in the same shape, the parse of the verifier text it returned, and
 * the exchange. Nothing about the account beyond its verifier is read here (its identity key is read when
 * a login is recorded); a PASSWD, whose user is logged in and known, also reads the account's identity key.
 *
 * @param ctx The server's shared state.
 * @param scram This connection's SCRAM server.
 * @param request Purpose, parsed client-first-message, who, source address, new verifier.
 * @returns The pending exchange; send its `exchange.serverFirst`.
 * @throws {ProtocolError} `RATE_LIMITED`; `BAD_MESSAGE` for a PASSWD without the re-sealed backup its
 *   account's identity key needs.
 */
export async function startExchange(
  ctx: SessionContext,
  scram: ScramServer,
  request: StartRequest,
): Promise<PendingExchange> {
  const { who } = request;
  const trace = ctx.trace;
  trace?.("limiter.retryAfter");
  const wait = ctx.limiter.retryAfter(request.peerAddress, who.key, ctx.now());
  if (wait > 0) throw rateLimited(wait);
  trace?.("mockVerifier");
  const mock = await mockVerifier(ctx.mockSecret, who.key, ctx.iterations);
  trace?.("formatVerifier");
  const decoy = formatVerifier(mock);
  trace?.("store.findCredentials");
  const found = await ctx.store.findCredentials(who.key, decoy);
  trace?.("parseVerifier");
  let verifier: ScramVerifier;
  let real = found.found;
  try {
    verifier = parseVerifier(found.verifier);
  } catch (err) {
    // A damaged account (only ever a stored one: the decoy parses) gets the mock exchange.
    ctx.log.error("bad_verifier", { user: found.name, error: (err as Error).message });
    verifier = mock;
    real = false;
  }
  trace?.("scram.begin");
  const pending: PendingExchange = {
    purpose: request.purpose,
    exchange: scram.begin(request.first, verifier, { mock: !real }),
    name: found.found ? found.name : who.name,
    key: who.key,
    userId: real ? found.id : null,
    stored: real ? found.verifier : null,
    mustChangePassword: real && found.mustChangePassword,
  };
  if (request.newVerifier !== undefined) pending.newVerifier = request.newVerifier;
  if (request.newBackup !== undefined) pending.newBackup = request.newBackup;
  // The identity key backup is sealed under the password: a new password without a re-sealed backup
  // would leave the key recoverable only with the old one. (Only PASSWD reads it: a logged-in user's
  // account is no secret to its owner.)
  if (request.purpose === "passwd" && request.newBackup === undefined && real) {
    const record = await ctx.store.findUser(who.key);
    if (record?.identityKey) {
      throw new ProtocolError(
        "BAD_MESSAGE",
        "Invalid field msg.backup: this account has an identity key; re-seal its backup under the new password",
      );
    }
  }
  return pending;
}

/**
 * Check a PROOF, keeping the failure counters honest.
 *
 * @param ctx The server's shared state.
 * @param pending The exchange.
 * @param proof The client-final-message.
 * @param peerAddress Source address.
 * @returns The server-final-message.
 * @throws {ProtocolError} `RATE_LIMITED`, or the exchange's own failure.
 */
export async function checkProof(
  ctx: SessionContext,
  pending: PendingExchange,
  proof: string,
  peerAddress: string,
): Promise<string> {
  const now = ctx.now();
  // Checked again here, so exchanges opened in parallel cannot all reach the proof check.
  const wait = ctx.limiter.retryAfter(peerAddress, pending.key, now);
  if (wait > 0) throw rateLimited(wait);
  // Counted while the (asynchronous) check runs, so proofs racing each other cannot all pass the gate.
  ctx.limiter.begin(peerAddress, pending.key);
  let correct = false;
  try {
    const serverFinal = await pending.exchange.finish(proof);
    correct = true;
    return serverFinal;
  } finally {
    ctx.limiter.end(peerAddress, pending.key, ctx.now(), correct);
  }
}

/**
 * Make the change a checked proof was for (record the login, replace or delete the verifier), only if the
 * account's verifier is still the one the proof was checked against.
 *
 * @param ctx The server's shared state.
 * @param pending The exchange whose proof was correct.
 * @param now Current time in ms.
 * @returns For a login, the previous login time (`null` for a first login; otherwise `null`) and the
 *   account's identity key as the login was recorded (otherwise `null`), and the account's verifier after
 *   the change.
 * @throws {ProtocolError} `AUTH_FAILED` when the password changed or the account went meanwhile.
 */
export async function commitProof(
  ctx: SessionContext,
  pending: PendingExchange,
  now: number,
): Promise<{ previous: number | null; identity: IdentityRecord | null; verifier: string }> {
  const id = pending.userId!;
  const stored = pending.stored!;
  let committed: boolean;
  let previous: number | null = null;
  let identity: IdentityRecord | null = null;
  let after = stored;
  switch (pending.purpose) {
    case "login": {
      const result = await ctx.store.recordLogin(id, stored, now);
      committed = result !== undefined;
      previous = result?.previous ?? null;
      identity = result?.identity ?? null;
      break;
    }
    case "passwd": {
      after = pending.newVerifier!;
      committed = await ctx.store.updateVerifier(id, stored, after, pending.newBackup);
      break;
    }
    case "delete":
      committed = await ctx.store.deleteUser(id, stored);
      break;
  }
  if (!committed) {
    throw new ProtocolError(
      "AUTH_FAILED",
      "Authentication failed: the password changed or the account was deleted meanwhile",
    );
  }
  return { previous, identity, verifier: after };
}
