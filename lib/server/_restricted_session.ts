/**
 * The restriction of a session whose account must change its password (an
 * account imported with a password the policy refuses): until its PASSWD
 * succeeds, it may only change the password or end the session, and it is not
 * online (docs/PROTOCOL.md, sections 3 and 6).
 *
 * @module
 */

import type { ClientOp } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { LoggedIn } from "./_replies.ts";

/**
 * What a restricted session may send: what changes the password (PASSWD and its PROOF), what ends or
 * describes the session, and what any session may send (HELLO, the keepalive PING). LOGIN is not among
 * them: LOGOUT first.
 */
export const RESTRICTED_OPS: ReadonlySet<ClientOp> = new Set([
  "HELLO",
  "PING",
  "PASSWD",
  "PROOF",
  "IS_LOGGED",
  "LOGOUT",
  "CLOSE",
]);

/**
 * Refuse a command a restricted session may not send.
 *
 * @param user The session's login, or `null`.
 * @param op The command.
 * @throws {ProtocolError} `PASSWORD_CHANGE_REQUIRED` when the login must change its password and `op` is
 *   not in {@linkcode RESTRICTED_OPS}.
 */
export function refuseWhileRestricted(user: LoggedIn | null, op: ClientOp): void {
  if (!user?.mustChangePassword || RESTRICTED_OPS.has(op)) return;
  throw new ProtocolError(
    "PASSWORD_CHANGE_REQUIRED",
    `Password change required: ${op} is refused until this account changes its password with PASSWD ` +
      "(only PASSWD, IS_LOGGED, LOGOUT and CLOSE are allowed until then)",
  );
}
