/**
 * The replies that describe a session's state: HELLO (and its version check), IS_LOGGED and ACCESS.
 *
 * @module
 */

import { PROTOCOL_VERSION } from "../codec/messages.ts";
import type { ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { UserRecord } from "../store/user_store.ts";

/** The account a session is logged in as. */
export interface LoggedIn {
  id: number;
  name: string;
  key: string;
  loginAt: number;
  previousLogin: number | null;
  /** The verifier the login was checked against (updated by this session's own PASSWD). */
  verifier: string;
  /** Ed25519 identity public key, once registered. */
  identityKey: Uint8Array | null;
  /** Its fingerprint. */
  fingerprint: string | null;
  /**
   * The account must change its password before anything else: the session is restricted (see
   * `RESTRICTED_OPS` in session.ts) and not online, until its own PASSWD lifts it.
   */
  mustChangePassword: boolean;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Check the version a HELLO asks for.
 *
 * @param version The client's version.
 * @throws {ProtocolError} `UNSUPPORTED_VERSION` for any but {@linkcode PROTOCOL_VERSION}.
 */
export function checkVersion(version: number): void {
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      "UNSUPPORTED_VERSION",
      `Unsupported protocol version: ${version} (this server speaks ${PROTOCOL_VERSION})`,
    );
  }
}

/**
 * The HELLO reply.
 *
 * @param server Name, mechanisms, channel, sealing key, the fresh seal nonce, and what a client needs to
 *   make a verifier: the iteration count and the shortest password the policy allows.
 * @returns The message.
 */
export function helloReply(
  server: {
    name: string;
    mechanisms: string[];
    confidential: boolean;
    sealKey: string;
    sealNonce: string;
    iterations: number;
    passwordMinLength: number;
  },
): ServerMessageOf<"HELLO"> {
  return {
    op: "HELLO",
    server: server.name,
    version: PROTOCOL_VERSION,
    versions: [PROTOCOL_VERSION],
    mechanisms: server.mechanisms,
    confidential: server.confidential,
    seal_key: server.sealKey,
    seal_nonce: server.sealNonce,
    iterations: server.iterations,
    password_min_length: server.passwordMinLength,
  };
}

/**
 * The IS_LOGGED reply; `must_change_password` is present only when true.
 *
 * @param user The logged-in account, or `null`.
 * @returns The message.
 */
export function isLoggedReply(user: LoggedIn | null): ServerMessageOf<"IS_LOGGED"> {
  if (!user) return { op: "IS_LOGGED", logged_in: false };
  return {
    op: "IS_LOGGED",
    logged_in: true,
    user: user.name,
    ...(user.mustChangePassword ? { must_change_password: true } : {}),
  };
}

/**
 * The ACCESS reply: the protected resource.
 *
 * @param record The account as stored.
 * @param me This session's login.
 * @returns The message.
 */
export function accessReply(record: UserRecord, me: LoggedIn): ServerMessageOf<"ACCESS"> {
  return {
    op: "ACCESS",
    user: record.name,
    created: iso(record.createdAt),
    ...(me.previousLogin === null ? {} : { last_login: iso(me.previousLogin) }),
    login: iso(me.loginAt),
    resource:
      `Welcome, ${record.name}. This is the protected resource: only a logged-in session can read it.`,
  };
}
