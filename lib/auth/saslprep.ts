/**
 * SASLprep (RFC 4013) for stored strings: unassigned code points refused.
 *
 * @module
 */

import saslprepImpl from "@mongodb-js/saslprep";

/**
 * Prepare a user name or password with SASLprep.
 *
 * @example
 * ```ts
 * import { saslPrep } from "./saslprep.ts";
 * console.assert(saslPrep("I\u00ADX") === "IX");
 * ```
 *
 * @param text The string as typed.
 * @returns The prepared string.
 * @throws {RangeError} When the string has a prohibited or unassigned character or bad bidi text.
 */
export function saslPrep(text: string): string {
  try {
    return saslprepImpl(text, { allowUnassigned: false });
  } catch (err) {
    throw new RangeError(`SASLprep refused the text: ${(err as Error).message.split(",")[0]}`);
  }
}
