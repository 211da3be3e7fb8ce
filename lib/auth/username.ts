/**
 * User name rules. Every name is looked up by its key: SASLprep, then 1–64
 * characters, no white space and no `:` (the legacy import format's
 * separator), lower-cased; names are unique case-insensitively through it.
 * A new name must also pass the PRECIS UsernameCaseMapped profile (RFC 8265),
 * which names made before it need not: they keep working, as the key is the
 * same.
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";
import {
  codePointName,
  enforceUsernameCaseMapped,
  enforceUsernameCasePreserved,
  PrecisError,
} from "./precis_username.ts";
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
 * import assert from "node:assert/strict";
 * import { prepareUsername } from "./username.ts";
 * assert(prepareUsername("Alice").key === "alice");
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

/** Why PRECIS refused a name, in the words of {@linkcode prepareNewUsername}'s errors. */
function precisRefusal(err: PrecisError): never {
  if (err.reason === "empty") refuse("empty", "Invalid username: it is empty");
  if (err.reason === "bidi") {
    refuse(
      "bidi",
      "Invalid username: it mixes right-to-left and left-to-right text in a way the Bidi Rule refuses (RFC 5893)",
    );
  }
  refuse(
    "disallowed_character",
    err.codePoint === undefined
      ? "Invalid username: it does not pass the PRECIS username rules (RFC 8265)"
      : `Invalid username: ${codePointName(err.codePoint)} is not allowed in a new user name ` +
        "(letters, digits, combining marks and printable ASCII only)",
  );
}

/**
 * Prepare and check the name of a new account: the rules of {@linkcode prepareUsername} (its key is how the
 * account will be found), and the PRECIS UsernameCaseMapped profile (RFC 8265): fullwidth and halfwidth
 * forms are mapped to their usual forms, only letters, digits, combining marks and printable ASCII are
 * allowed (no symbols, no compatibility forms such as ligatures or styled letters, no invisible
 * characters), NFC, and right-to-left names must satisfy the Bidi Rule. ZERO WIDTH JOINER and NON-JOINER,
 * which PRECIS allows in some contexts, are refused (SASLprep removes them from the key anyway). The name
 * is stored as the user chose its case (UsernameCasePreserved).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareNewUsername } from "./username.ts";
 * assert(prepareNewUsername("\uFF21lice").name === "Alice");
 * try {
 *   prepareNewUsername("I\u2665NY");
 * } catch (err) {
 *   assert((err as { details: { reason: string } }).details.reason === "disallowed_character");
 * }
 * ```
 *
 * @param raw The name as sent.
 * @returns The name to store and its key.
 * @throws {ProtocolError} `INVALID_USERNAME` with the reasons of {@linkcode prepareUsername}, and
 *   `disallowed_character` or `bidi`.
 */
export function prepareNewUsername(raw: string): PreparedName {
  // The old rules first: their reasons (white space, colon, control characters) are the more precise.
  prepareUsername(raw);
  let name: string;
  try {
    name = enforceUsernameCasePreserved(raw);
    enforceUsernameCaseMapped(raw);
  } catch (err) {
    if (err instanceof PrecisError) precisRefusal(err);
    throw err;
  }
  const prepared = prepareUsername(name);
  // PRECIS leaves nothing SASLprep would change (no compatibility forms, no spaces, nothing it maps to
  // nothing): the stored name is its own SASLprep form, as every stored name is.
  if (prepared.name !== name) {
    refuse("disallowed_character", "Invalid username: it does not pass the PRECIS username rules (RFC 8265)");
  }
  return prepared;
}
