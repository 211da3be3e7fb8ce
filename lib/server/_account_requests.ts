/**
 * Requests about the account itself: REGISTER, the new secrets of PASSWD, the
 * other sessions a password change or a deletion ends, and the logging of a
 * failed request.
 *
 * @module
 */

import { prepareNewUsername } from "../auth/username.ts";
import type { ClientMessageOf, ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { addAccount } from "../store/create_account.ts";
import { backupText, checkIdentity } from "./_chat_requests.ts";
import { readNewVerifier } from "./_new_verifier.ts";
import type { NewVerifierSource } from "./_new_verifier.ts";
import { rateLimited } from "./_scram_exchange.ts";
import type { LogFields } from "./logger.ts";
import type { SessionContext } from "./session_context.ts";
import type { RegisteredSession } from "./session_registry.ts";

/**
 * REGISTER: a budget per source, the name checked before the secret is opened, the verifier the client
 * computed (the password never reaches the server) and the identity key (if sent) stored with the account.
 *
 * @param ctx The server's shared state.
 * @param msg The request.
 * @param source The session's channel, sealing key and nonce.
 * @param log Session fields for the log line.
 * @returns The reply.
 * @throws {ProtocolError} `RATE_LIMITED`, `INVALID_USERNAME`, `USER_EXISTS`, `BAD_MESSAGE` for a verifier
 *   of the wrong form, sealing errors.
 */
export async function registerAccount(
  ctx: SessionContext,
  msg: ClientMessageOf<"REGISTER">,
  source: NewVerifierSource & { peerAddress: string },
  log: LogFields,
): Promise<ServerMessageOf<"REGISTER">> {
  // Accounts are cheap to ask for and permanent: a source gets a budget of them.
  const wait = await ctx.limits.takeRegistration(source.peerAddress, ctx.now());
  if (wait > 0) throw rateLimited(wait);
  // The name is checked before the secret is opened: the cheaper, clearer refusal comes first.
  prepareNewUsername(msg.user);
  const identity = msg.identity ? (await checkIdentity(msg.identity)).record : undefined;
  const verifier = await readNewVerifier("REGISTER", msg.user, { msg, iterations: ctx.iterations }, source);
  const record = await addAccount(ctx.store, { user: msg.user, verifier, identity }, ctx.now());
  ctx.log.info("register", { ...log, user: record.name });
  return { op: "REGISTER", user: record.name };
}

/**
 * Log a failed request and turn anything thrown into the error the client sees: a `ProtocolError` as
 * it is (logged as a warning when it is `UNAVAILABLE`), anything else as `INTERNAL` (details only in the log).
 *
 * @param ctx The server's shared state.
 * @param err What was thrown.
 * @param op The command, for the log's event name.
 * @param fields Session fields for the log line.
 * @returns The error to send.
 */
export function failedRequest(
  ctx: SessionContext,
  err: unknown,
  op: string,
  fields: LogFields,
): ProtocolError {
  if (err instanceof ProtocolError) {
    // A service that does not answer is the operator's to see, not the client's doing.
    const level = err.code === "UNAVAILABLE" ? "warn" : "info";
    ctx.log[level](`${op.toLowerCase()}_failed`, { ...fields, code: err.code });
    return err;
  }
  ctx.log.error("internal_error", {
    ...fields,
    code: "INTERNAL",
    op,
    error: (err as Error)?.message ?? String(err),
  });
  return new ProtocolError("INTERNAL", "Internal server error: the request was not completed");
}

/**
 * The new secrets of a PASSWD, read before any exchange starts: the verifier of the new password and the
 * identity key backup re-sealed under it, if sent.
 *
 * @param ctx The server's shared state.
 * @param user The logged-in name.
 * @param msg The request.
 * @param source The session's channel, sealing key and nonce.
 * @returns What the exchange commits once the current password is proved.
 * @throws {ProtocolError} `BAD_MESSAGE` for a verifier of the wrong form, `CONFIDENTIALITY_REQUIRED`, sealing
 *   errors.
 */
export async function passwordChange(
  ctx: SessionContext,
  user: string,
  msg: ClientMessageOf<"PASSWD">,
  source: NewVerifierSource,
): Promise<{ newVerifier: string; newBackup?: string }> {
  const newVerifier = await readNewVerifier("PASSWD", user, { msg, iterations: ctx.iterations }, source);
  return msg.backup ? { newVerifier, newBackup: backupText(msg.backup) } : { newVerifier };
}

/**
 * How the other sessions of an account end after a password change or a deletion (the `BYE` code and
 * reason), and those the re-check of sessions finds changed (session_recheck.ts).
 */
export const SESSION_ENDINGS = {
  passwd: ["PASSWORD_CHANGED", "Password changed: log in again"],
  delete: ["ACCOUNT_DELETED", "Account deleted"],
} as const;

/**
 * After a correct PASSWD or DELETE proof: every other session of the account ends, on this node and on the
 * others, and the event is logged with how many did.
 *
 * @param ctx The server's shared state.
 * @param event What happened to the account.
 * @param key The account's user key.
 * @param session The session that did it, which stays.
 * @param log Session fields for the log line.
 * @throws {ProtocolError} `UNAVAILABLE` when the other nodes did not all confirm (the change is made; the
 *   message says so).
 */
export async function endOtherSessions(
  ctx: SessionContext,
  event: keyof typeof SESSION_ENDINGS,
  key: string,
  session: RegisteredSession,
  log: LogFields,
): Promise<void> {
  const { ended, confirmed } = await endEverywhere(ctx, event, key, session);
  if (!confirmed) {
    ctx.log.warn(`${event}_unconfirmed`, { ...log, ended_sessions: ended, other_nodes: "not confirmed" });
    throw new ProtocolError("UNAVAILABLE", UNCONFIRMED[event]);
  }
  ctx.log.info(event, { ...log, ended_sessions: ended });
}

/**
 * End the account's other sessions here, then ask the other nodes to end theirs.
 *
 * @returns How many ended, and whether the other nodes all confirmed (`UNAVAILABLE` from them: not).
 */
async function endEverywhere(
  ctx: SessionContext,
  event: keyof typeof SESSION_ENDINGS,
  key: string,
  session: RegisteredSession,
): Promise<{ ended: number; confirmed: boolean }> {
  const [code, reason] = SESSION_ENDINGS[event];
  const here = ctx.registry.endUser(key, session, code, reason);
  try {
    return { ended: here + await ctx.sessions.endElsewhere(key, code, reason), confirmed: true };
  } catch (err) {
    if (!(err instanceof ProtocolError && err.code === "UNAVAILABLE")) throw err;
    return { ended: here, confirmed: false };
  }
}

/**
 * What a client is told when its change is made but the other nodes did not all confirm that the account's
 * sessions there ended (the node lost the bus, or a node did not answer in time): their re-check against
 * the store ends them, within `session_recheck` (at most 60 s).
 */
const UNCONFIRMED = {
  passwd: "Password changed, but not every server node confirmed that the account's other sessions ended: " +
    "they end within a minute. Log in with the new password from now on",
  delete: "Account deleted, but not every server node confirmed that its other sessions ended: they end " +
    "within a minute",
} as const;

/** What a client is told when the database stopped answering while its change was written. */
const UNSURE = {
  passwd: "The database stopped answering while the password was being changed: it may have been changed. " +
    "Log in again to check, with the new password if the old one fails; the account's other sessions end",
  delete: "The database stopped answering while the account was being deleted: it may have been deleted. " +
    "Log in again to check; the account's other sessions end",
} as const;

/**
 * The store did not confirm the write of a PASSWD or DELETE (`UNAVAILABLE`: the database stopped answering,
 * perhaps after it committed): end the account's other sessions all the same, here and on the other nodes,
 * since the change may be made (if it was not, they only have to log in again), and return the error the
 * client gets, which says so. The other nodes not confirming changes nothing: the error is the same, and
 * the re-check of sessions (session_recheck.ts) ends theirs if the change was made.
 *
 * @param ctx The server's shared state.
 * @param event What may have happened to the account.
 * @param key The account's user key.
 * @param session The session that asked, which stays.
 * @param log Session fields for the log line.
 * @returns `UNAVAILABLE`, saying that the change may have been made.
 */
export async function endOtherSessionsUnsure(
  ctx: SessionContext,
  event: keyof typeof SESSION_ENDINGS,
  key: string,
  session: RegisteredSession,
  log: LogFields,
): Promise<ProtocolError> {
  // Not confirmed by the other nodes: said in the log line; the re-check of sessions on each node ends them.
  const { ended, confirmed } = await endEverywhere(ctx, event, key, session);
  ctx.log.warn(`${event}_unconfirmed`, {
    ...log,
    ended_sessions: ended,
    ...(confirmed ? {} : { other_nodes: "not confirmed" }),
  });
  return new ProtocolError("UNAVAILABLE", UNSURE[event]);
}
