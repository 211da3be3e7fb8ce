/**
 * A session's SCRAM exchange from start to committed change: rate limits, the
 * lookup with a mock verifier for unknown users, the check of a device token,
 * failure accounting, and the compare-and-swap write a correct proof allows.
 *
 * @module
 */

import { mockVerifier } from "../auth/scram_server.ts";
import type { ScramServer, ScramServerExchange } from "../auth/scram_server.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { ClientFirst } from "../codec/scram_messages.ts";
import type { ValidDeviceToken } from "../crypto/device_token.ts";
import { parseVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import type { LogFields } from "./logger.ts";
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
  /**
   * The valid device token the attempt showed (LOGIN) or the session holds (PASSWD, DELETE): the attempt
   * is counted against it alone (see `RateLimiter`). `null` without one.
   */
  deviceToken: ValidDeviceToken | null;
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
  /** LOGIN's `device_token`, as shown: checked here against the account the LOGIN names. */
  deviceToken?: string;
  /** PASSWD's and DELETE's: the device token the session holds (checked at its LOGIN, or issued to it). */
  heldToken?: ValidDeviceToken | null;
  /** The session's fields for the log line of a device token that is ignored. */
  log?: LogFields;
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

/** Refuse an attempt in backoff: its token's, or its source's and account's without a token. */
function gate(ctx: SessionContext, address: string, key: string, token: ValidDeviceToken | null): void {
  const wait = ctx.limiter.retryAfter(address, key, ctx.now(), token ? { deviceToken: token.id } : {});
  if (wait > 0) throw rateLimited(wait);
}

/**
 * Start an exchange; unknown users get a mock one that fails the same way.
 *
 * Without a device token to check, a source in backoff is refused before anything else is done. A LOGIN
 * that shows one is gated only after the token is checked, which needs the account: the lookup, and the
 * token's HMAC against the account's verifier (the mock one for an unknown name), come first, on both
 * paths alike.
 *
 * @param ctx The server's shared state.
 * @param scram This connection's SCRAM server.
 * @param request Purpose, parsed client-first-message, who, source address, new verifier, device token.
 * @returns The pending exchange; send its `exchange.serverFirst`.
 * @throws {ProtocolError} `RATE_LIMITED`; `BAD_MESSAGE` for a PASSWD without the re-sealed backup its
 *   account's identity key needs.
 */
export async function startExchange(
  ctx: SessionContext,
  scram: ScramServer,
  request: StartRequest,
): Promise<PendingExchange> {
  const { who, deviceToken: shown } = request;
  const held = request.heldToken && request.heldToken.expiresAt > ctx.now() ? request.heldToken : null;
  if (shown === undefined) gate(ctx, request.peerAddress, who.key, held);
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
  let token = held;
  if (shown !== undefined) {
    const subject = { accountId: userId, nameKey: who.key, storedKey: verifier.storedKey };
    const check = await ctx.deviceTokens.check(shown, subject, ctx.now());
    if (check.ok) token = check.token;
    // Ignored, as if none had been shown; the log says why (the client is not told).
    else ctx.log.info("device_token_ignored", { ...request.log, reason: check.fault });
    gate(ctx, request.peerAddress, who.key, token);
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
    deviceToken: token,
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
  const attempt = pending.deviceToken ? { deviceToken: pending.deviceToken.id } : {};
  // Checked again here, so exchanges opened in parallel cannot all reach the proof check.
  const wait = ctx.limiter.retryAfter(peerAddress, pending.key, now, attempt);
  if (wait > 0) throw rateLimited(wait);
  // Counted while the (asynchronous) check runs, so proofs racing each other cannot all pass the gate.
  ctx.limiter.begin(peerAddress, pending.key, attempt);
  let correct = false;
  try {
    const serverFinal = await pending.exchange.finish(proof);
    correct = true;
    return serverFinal;
  } finally {
    ctx.limiter.end(peerAddress, pending.key, ctx.now(), correct, attempt);
  }
}

/**
 * A device token for an account whose password was just proved (LOGIN) or set (PASSWD): bound to the
 * account and to the verifier it now has.
 *
 * @param ctx The server's shared state.
 * @param account The account's row id, lower-cased name and verifier (as stored, after the change).
 * @param now Current time in ms.
 * @returns The token to send and the grant the session holds.
 * @throws {TypeError} When the verifier does not parse (it was checked before it was stored or used).
 */
export async function issueDeviceToken(
  ctx: SessionContext,
  account: { id: number; key: string; verifier: string },
  now: number,
): Promise<{ token: string; grant: ValidDeviceToken }> {
  const { storedKey } = parseVerifier(account.verifier);
  return await ctx.deviceTokens.issue({ accountId: account.id, nameKey: account.key, storedKey }, now);
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
