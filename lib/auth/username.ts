/**
 * User name rules: SASLprep, then 1–64 characters, no white space and no `:`
 * (the legacy import format's separator). Names are unique case-insensitively
 * through their lower-cased key.
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";
import { saslPrep } from "./saslprep.ts";

/** Longest name, in code points after SASLprep. */
export const MAX_USERNAME_CHARS = 64;

/** A name ready to store: as shown, and its uniqueness key. */
export interface PreparedName {
  /** The SASLprepped name, as the user chose its case. */
  name: string;
  /** Lower-cased name; unique across accounts. */
  key: string;
}

function refuse(reason: string, message: string): never {
  throw new ProtocolError("INVALID_USERNAME", message, { reason });
}

/**
 * Prepare and check a user name.
 *
 * @example
 * ```ts
 * import { prepareUsername } from "./username.ts";
 * console.assert(prepareUsername("Alice").key === "alice");
 * ```
 *
 * @param raw The name as sent.
 * @returns The prepared name and its key.
 * @throws {ProtocolError} `INVALID_USERNAME` with reason `empty`, `too_long`, `prohibited_character`,
 *   `whitespace` or `colon`.
 */
export function prepareUsername(raw: string): PreparedName {
  let name: string;
  try {
    name = saslPrep(raw);
  } catch {
    refuse(
      "prohibited_character",
      "Invalid username: it contains a prohibited character (control, private use or unassigned)",
    );
  }
  const length = [...name].length;
  if (length === 0) refuse("empty", "Invalid username: it is empty");
  if (length > MAX_USERNAME_CHARS) {
    refuse("too_long", `Invalid username: ${length} characters exceeds ${MAX_USERNAME_CHARS}`);
  }
  if (/\s/u.test(name)) refuse("whitespace", "Invalid username: it contains white space");
  if (name.includes(":")) refuse("colon", "Invalid username: it contains ':'");
  return { name, key: name.toLowerCase() };
}
