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
import { parseVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
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
  /** The account's identity key and sealed backup when the exchange started. */
  identity: { key: Uint8Array; backup: string } | null;
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
  const wait = ctx.limiter.retryAfter(request.peerAddress, who.key, ctx.now());
  if (wait > 0) throw rateLimited(wait);
  // Computed for every exchange, known user or not, so both paths do the same work.
  const mock = await mockVerifier(ctx.mockSecret, who.key, ctx.iterations);
  const record = await ctx.store.findUser(who.key);
  let verifier: ScramVerifier = mock;
  let userId: number | null = null;
  if (record) {
    try {
      verifier = parseVerifier(record.verifier);
      userId = record.id;
    } catch (err) {
      ctx.log.error("bad_verifier", { user: record.name, error: (err as Error).message });
    }
  }
  const pending: PendingExchange = {
    purpose: request.purpose,
    exchange: scram.begin(request.first, verifier, { mock: userId === null }),
    name: record?.name ?? who.name,
    key: who.key,
    userId,
    stored: userId === null ? null : record!.verifier,
    identity: userId !== null && record!.identityKey && record!.keyBackup
      ? { key: record!.identityKey, backup: record!.keyBackup }
      : null,
    mustChangePassword: userId !== null && record!.mustChangePassword,
  };
  if (request.newVerifier !== undefined) pending.newVerifier = request.newVerifier;
  if (request.newBackup !== undefined) pending.newBackup = request.newBackup;
  // The identity key backup is sealed under the password: a new password without a re-sealed backup
  // would leave the key recoverable only with the old one.
  if (request.purpose === "passwd" && pending.identity && request.newBackup === undefined) {
    throw new ProtocolError(
      "BAD_MESSAGE",
      "Invalid field msg.backup: this account has an identity key; re-seal its backup under the new password",
    );
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
 * @returns For a login, the previous login time (`null` for a first login; otherwise `null`), and the
 *   account's verifier after the change.
 * @throws {ProtocolError} `AUTH_FAILED` when the password changed or the account went meanwhile.
 */
export async function commitProof(
  ctx: SessionContext,
  pending: PendingExchange,
  now: number,
): Promise<{ previous: number | null; verifier: string }> {
  const id = pending.userId!;
  const stored = pending.stored!;
  let committed: boolean;
  let previous: number | null = null;
  let after = stored;
  switch (pending.purpose) {
    case "login": {
      const result = await ctx.store.recordLogin(id, stored, now);
      committed = result !== undefined;
      previous = result ?? null;
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
  return { previous, verifier: after };
}
