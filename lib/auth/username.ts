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
/** Longest user name (and lower-cased key) in bytes of UTF-8. */
export const MAX_USERNAME_BYTES = 255;

const encoder = new TextEncoder();

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

/** Whether a key is already in SASLprep's output form (a lower-cased name may not be). */
function preparesTo(key: string): boolean {
  try {
    return saslPrep(key) === key;
  } catch {
    return false;
  }
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
  const key = name.toLowerCase();
  // Names travel in datagrams as at most 255 bytes of UTF-8, and a key must itself be a valid name
  // (peers and lookups use it); lower-casing can lengthen a name or reach unassigned code points.
  const bytes = Math.max(encoder.encode(name).length, encoder.encode(key).length);
  if (bytes > MAX_USERNAME_BYTES) {
    refuse("too_long", `Invalid username: ${bytes} bytes of UTF-8 exceeds ${MAX_USERNAME_BYTES}`);
  }
  if (key !== name && !preparesTo(key)) {
    refuse("prohibited_character", "Invalid username: its lower-case form contains an unassigned character");
  }
  return { name, key };
}
