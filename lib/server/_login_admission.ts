/**
 * The login budgets as a session meets them: asked at `LOGIN` before any
 * exchange, spent by a correct proof before the login is committed (with the
 * proof's end: `checkProof` in _scram_exchange.ts), and a spent budget
 * answered with `RATE_LIMITED` and the time to wait.
 *
 * @module
 */

import type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { SessionContext } from "./session_context.ts";

/**
 * Answer a spent login budget with `RATE_LIMITED` and the time to wait.
 *
 * @param refusal The budgets' refusal, or `null` (then nothing happens).
 * @throws {ProtocolError} `RATE_LIMITED` with `retryAfterMs`.
 */
export function refuseLogin(refusal: LoginRefusal | null): void {
  if (!refusal) return;
  const whose = refusal.of === "source" ? "from your address" : "to this account";
  throw new ProtocolError(
    "RATE_LIMITED",
    `Too many logins ${whose}: retry in ${Math.ceil(refusal.waitMs / 1000)} s`,
    { retryAfterMs: refusal.waitMs },
  );
}

/**
 * At `LOGIN`, before any exchange: refuse a login that could not succeed now (see `LoginBudget.check`).
 *
 * @param ctx The server's shared state.
 * @param peerAddress Source address.
 * @param account Lower-cased account name, known or not.
 * @param options Whether it showed a valid device token (then the source's budget is not asked).
 * @throws {ProtocolError} `RATE_LIMITED` with `retryAfterMs`.
 */
export async function checkLoginBudget(
  ctx: SessionContext,
  peerAddress: string,
  account: string,
  options: LoginOptions = {},
): Promise<void> {
  refuseLogin(await ctx.limits.checkLogin(peerAddress, account, ctx.now(), options));
}

/**
 * At `LOGIN` without a device token, before any exchange: {@linkcode checkLoginBudget} and the backoff's
 * wait in one step (`AbuseLimits.loginGate`), which the exchange's gate then uses instead of asking again.
 *
 * @param ctx The server's shared state.
 * @param peerAddress Source address.
 * @param account Lower-cased account name, known or not.
 * @returns Milliseconds the backoff says to wait (0 to go ahead).
 * @throws {ProtocolError} `RATE_LIMITED` with `retryAfterMs` when a login budget is spent.
 */
export async function checkLoginGate(
  ctx: SessionContext,
  peerAddress: string,
  account: string,
): Promise<number> {
  const { refusal, waitMs } = await ctx.limits.loginGate(peerAddress, account, ctx.now());
  refuseLogin(refusal);
  return waitMs;
}

/**
 * Refuse a login while this node may not log anyone in: it lost touch with the other nodes, so it could not
 * end the session when another node's `PASSWD` or `DELETE` asks (see `SessionDirectory.loginsRefused`).
 *
 * @param ctx The server's shared state.
 * @throws {ProtocolError} `UNAVAILABLE`.
 */
export function refuseWhileCutOff(ctx: SessionContext): void {
  const reason = ctx.sessions.loginsRefused();
  if (reason !== null) throw new ProtocolError("UNAVAILABLE", reason);
}

/** The `UNAVAILABLE` message of a login whose node lost touch with the others while it completed. */
export const LOGIN_CUT_OFF =
  "This server lost touch with the other server nodes while the login completed: log in again";

/**
 * The last check of a login, in the same step as its session is registered as logged in: refuse it when
 * the sessions it would have joined were ended since it took `mark` (before its store write). Its session
 * was not registered yet, so nothing ended it: a `PASSWD` or `DELETE` of its account (here or on another
 * node) that came after the login's check of the password would otherwise leave it logged in with the old
 * one; a node that lost touch with the others meanwhile and is back would have ended it.
 *
 * @param ctx The server's shared state.
 * @param user Lower-cased account name.
 * @param mark The registry's mark taken before the login's store write.
 * @throws {ProtocolError} `AUTH_FAILED` (the account's sessions were ended), `UNAVAILABLE` (every one was).
 */
export function refuseIfEndedSince(ctx: SessionContext, user: string, mark: number): void {
  const ended = ctx.registry.endedSince(user, mark);
  if (ended === "all") throw new ProtocolError("UNAVAILABLE", LOGIN_CUT_OFF);
  if (ended === "user") {
    throw new ProtocolError(
      "AUTH_FAILED",
      "Authentication failed: the password changed or the account was deleted meanwhile",
    );
  }
}
