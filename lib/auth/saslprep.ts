/**
 * SASLprep (RFC 4013). Names are prepared as stored strings (unassigned code
 * points refused); passwords as query strings, as RFC 5802 §2.2 requires for
 * SCRAM, so any Unicode, emoji included, can be part of a password.
 *
 * @module
 */

import saslprepImpl from "@mongodb-js/saslprep";

/** RFC 3454 table B.1: characters SASLprep maps to nothing. */
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;

/** Options of {@linkcode saslPrep}. */
export interface SaslPrepOptions {
  /** Allow code points unassigned in Unicode 3.2 (query strings such as SCRAM passwords). */
  allowUnassigned?: boolean;
}

/**
 * Prepare a user name or password with SASLprep.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saslPrep } from "./saslprep.ts";
 * assert(saslPrep("I\u00ADX") === "IX");
 * assert(saslPrep("\u{1F680} launch", { allowUnassigned: true }) === "\u{1F680} launch");
 * ```
 *
 * @param text The string as typed.
 * @param options Whether unassigned code points are allowed (default: refused).
 * @returns The prepared string.
 * @throws {RangeError} When the string has a prohibited (or refused unassigned) character or bad bidi text.
 */
export function saslPrep(text: string, options: SaslPrepOptions = {}): string {
  // Mapping to nothing first is what SASLprep does anyway; it also spares the library an empty
  // string, on which it throws a TypeError.
  const mapped = text.replace(MAPPED_TO_NOTHING, "");
  if (mapped === "") return "";
  try {
    return saslprepImpl(mapped, { allowUnassigned: options.allowUnassigned ?? false });
  } catch (err) {
    throw new RangeError(`SASLprep refused the text: ${(err as Error).message.split(",")[0]}`);
  }
}
