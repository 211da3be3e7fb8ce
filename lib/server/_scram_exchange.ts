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
import { formatVerifier, parseVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import type { IdentityRecord } from "../store/user_store.ts";
import { refuseLogin } from "./_login_admission.ts";
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
  /**
   * LOGIN's backoff wait, already asked with its budgets (`AbuseLimits.loginGate`): the gate uses it
   * rather than ask again. Only without a device token or a held one.
   */
  gateWaitMs?: number;
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

/**
 * Refuse an attempt in backoff, and say which token it is counted against. With a token, only the token's
 * own failures count; a token in its own backoff is set aside, and the attempt is gated and counted as one
 * without a token. (Whoever copied the token could otherwise keep it in backoff with a wrong guess now and
 * then, and so lock its owner out: someone without it can only slow down their own address.)
 *
 * @returns The token the attempt is counted against, or `null`.
 */
async function gate(
  ctx: SessionContext,
  address: string,
  key: string,
  token: ValidDeviceToken | null,
  log?: LogFields,
  askedWaitMs?: number,
): Promise<ValidDeviceToken | null> {
  ctx.trace?.("limits.retryAfter");
  const now = ctx.now();
  if (token && await ctx.limits.retryAfter(address, key, now, { deviceToken: token.id }) === 0) return token;
  if (token) ctx.log.info("device_token_in_backoff", { ...log });
  // Asked already, with the same keys, when the LOGIN's budgets were (and no token was in play then).
  const wait = askedWaitMs ?? await ctx.limits.retryAfter(address, key, now);
  if (wait > 0) throw rateLimited(wait);
  return null;
}

/**
 * Start an exchange; unknown users get a mock one that fails the same way.
 *
 * A name nobody has must not answer sooner or later than an account, or the time of a CHALLENGE tells
 * which names exist: both do the same steps in the same order, told to `ctx.trace` as they run: the
 * backoff check (when no device token is shown), the mock verifier (one HMAC) formatted as a decoy, one
 * store lookup that returns the account's credentials or the decoy in the same shape, the parse of the
 * verifier text it returned, the check of a device token shown (its HMAC against the account's verifier,
 * the mock one for an unknown name) and then the backoff check it decides, and the exchange. Nothing about
 * the account beyond its verifier is read here (its identity key is read when a login is recorded); a
 * PASSWD, whose user is logged in and known, also reads the account's identity key.
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
  const trace = ctx.trace;
  const held = request.heldToken && request.heldToken.expiresAt > ctx.now() ? request.heldToken : null;
  let token = held;
  if (shown === undefined) {
    const asked = held ? undefined : request.gateWaitMs;
    token = await gate(ctx, request.peerAddress, who.key, held, request.log, asked);
  }
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
  const userId = real ? found.id : null;
  if (shown !== undefined) {
    trace?.("deviceTokens.check");
    const subject = { accountId: userId, nameKey: who.key, storedKey: verifier.storedKey };
    const check = await ctx.deviceTokens.check(shown, subject, ctx.now());
    // Ignored, as if none had been shown; the log says why (the client is not told).
    if (!check.ok) ctx.log.info("device_token_ignored", { ...request.log, reason: check.fault });
    token = await gate(ctx, request.peerAddress, who.key, check.ok ? check.token : null, request.log);
  }
  trace?.("scram.begin");
  const pending: PendingExchange = {
    purpose: request.purpose,
    exchange: scram.begin(request.first, verifier, { mock: !real }),
    name: found.found ? found.name : who.name,
    key: who.key,
    userId,
    stored: real ? found.verifier : null,
    mustChangePassword: real && found.mustChangePassword,
    deviceToken: token,
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
 * Check a PROOF, keeping the failure counters honest; a correct one of a `LOGIN` also spends the login
 * budgets, in the same step as its end is counted.
 *
 * @param ctx The server's shared state.
 * @param pending The exchange.
 * @param proof The client-final-message.
 * @param peerAddress Source address.
 * @returns The server-final-message.
 * @throws {ProtocolError} `RATE_LIMITED` (the backoff; for a login, also a spent budget), or the
 *   exchange's own failure.
 */
export async function checkProof(
  ctx: SessionContext,
  pending: PendingExchange,
  proof: string,
  peerAddress: string,
): Promise<string> {
  const now = ctx.now();
  let attempt = pending.deviceToken ? { deviceToken: pending.deviceToken.id } : {};
  // Checked again here, so exchanges opened in parallel cannot all reach the proof check; a token in its
  // own backoff by now is set aside, as at the start. Counted as under way in the same step, while the
  // (asynchronous) check runs, so proofs racing each other cannot all pass the gate.
  let wait = await ctx.limits.beginProof(peerAddress, pending.key, now, attempt);
  if (wait > 0 && pending.deviceToken) {
    attempt = {};
    wait = await ctx.limits.beginProof(peerAddress, pending.key, now);
  }
  if (wait > 0) throw rateLimited(wait);
  let serverFinal: string | undefined;
  let failure: unknown;
  try {
    serverFinal = await pending.exchange.finish(proof);
  } catch (err) {
    failure = err;
  }
  const correct = serverFinal !== undefined;
  // A login spends the budgets in the same step, before it is committed: refused, nothing is committed
  // and nobody is told of a presence change. Refused by the backoff (the shared limits decide there),
  // the outcome is not told either.
  const spend = correct && pending.purpose === "login"
    ? { deviceToken: pending.deviceToken !== null }
    : undefined;
  const refusal = await ctx.limits.endProof(peerAddress, pending.key, ctx.now(), correct, attempt, spend);
  if (refusal?.of === "backoff") throw rateLimited(refusal.waitMs);
  refuseLogin(refusal);
  if (!correct) throw failure;
  return serverFinal!;
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
