/**
 * Password policy after NIST SP 800-63B §3.1.1.2, applied by the client (and by
 * `seed` for the accounts it creates): a length range
 * in Unicode code points, any characters (SASLprep query strings: emoji and other
 * code points unassigned in Unicode 3.2 are fine), no composition rules, no common
 * passwords (the zxcvbn-ts common list) and no passwords built on the user's
 * own name or the service's name. The common list (several megabytes in memory)
 * is loaded at the first check, so a process that never checks one (the server)
 * never holds it.
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";
import { saslPrep } from "./saslprep.ts";

/** Default shortest password, in code points. */
export const DEFAULT_MIN_PASSWORD_CHARS = 10;
/** Longest password, in code points. */
export const MAX_PASSWORD_CHARS = 256;

/** Reasons a password is refused, carried in the error's `reason`. */
export type PolicyReason =
  | "too_short"
  | "too_long"
  | "common"
  | "contains_username"
  | "contains_service"
  | "prohibited_character";

let common: Promise<Set<string>> | undefined;

function commonPasswords(): Promise<Set<string>> {
  common ??= import("@zxcvbn-ts/language-common").then(({ dictionary }) =>
    new Set((dictionary["passwords-common"] as string[]).map((p) => p.toLowerCase()))
  );
  return common;
}

function refuse(reason: PolicyReason, message: string): never {
  throw new ProtocolError("PASSWORD_POLICY", message, { reason });
}

/** Options of {@linkcode checkPassword}. */
export interface PolicyOptions {
  /** Shortest password in code points (default 10). */
  minLength?: number;
  /** The account's name; the password may not contain it. */
  username?: string;
}

/**
 * Check a new password and return its SASLprepped form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPassword } from "./password_policy.ts";
 * assert(await checkPassword("correct horse battery", { username: "alice" }) === "correct horse battery");
 * ```
 *
 * @param password The password as typed.
 * @param options Minimum length and user name.
 * @returns The prepared password (what the verifier is computed from).
 * @throws {ProtocolError} `PASSWORD_POLICY` with a {@linkcode PolicyReason}.
 */
export async function checkPassword(password: string, options: PolicyOptions = {}): Promise<string> {
  let prepared: string;
  try {
    prepared = saslPrep(password, { allowUnassigned: true });
  } catch {
    refuse(
      "prohibited_character",
      "Password refused: it contains a control or private use character",
    );
  }
  const length = [...prepared].length;
  const min = options.minLength ?? DEFAULT_MIN_PASSWORD_CHARS;
  if (length < min) refuse("too_short", `Password refused: ${length} characters is shorter than ${min}`);
  if (length > MAX_PASSWORD_CHARS) {
    refuse("too_long", `Password refused: ${length} characters is longer than ${MAX_PASSWORD_CHARS}`);
  }
  const lower = prepared.toLowerCase();
  if ((await commonPasswords()).has(lower)) {
    refuse("common", "Password refused: it is on the list of common passwords");
  }
  const name = options.username?.toLowerCase();
  if (name && (lower === name || (name.length >= 3 && lower.includes(name)))) {
    refuse("contains_username", "Password refused: it contains the user name");
  }
  if (lower.includes("authchat")) {
    refuse("contains_service", "Password refused: it contains the service name");
  }
  return prepared;
}
