/**
 * Look-alike names: the confusable skeleton of Unicode UTS #39 section 4,
 * from Unicode's confusables.txt as the `unhomoglyph` package ships it
 * (Unicode 13.0: characters added later map to themselves), and the two keys
 * that tell whether a new name looks like an existing one.
 *
 * The data (6,311 mappings, about 100 KB of JSON) is parsed when this module
 * loads, and turned into a lookup table at the first skeleton.
 *
 * @module
 */

import confusables from "unhomoglyph/data.json" with { type: "json" };

let prototypes: Map<string, string> | undefined;

function prototypeOf(char: string): string {
  prototypes ??= new Map(Object.entries(confusables as Record<string, string>));
  return prototypes.get(char) ?? char;
}

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/**
 * The UTS #39 skeleton: NFD, default-ignorable code points removed, each code point replaced by its
 * prototype, NFD again. Two strings are confusable when their skeletons are equal. A skeleton is for
 * comparison only, never for display.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { skeleton } from "./confusable_skeleton.ts";
 * assert(skeleton("\u0440\u0430\u0443\u0440\u0430l") === skeleton("paypal"));
 * ```
 *
 * @param text Any string.
 * @returns Its skeleton.
 */
export function skeleton(text: string): string {
  let out = "";
  for (const char of text.normalize("NFD").replace(IGNORABLE, "")) out += prototypeOf(char);
  return out.normalize("NFD");
}

const MARK = /^\p{M}$/u;
/** The scripts UTS #39 maps most look-alikes into, and the characters every script shares. */
const LATIN_LIKE = /^[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Common}]$/u;

/**
 * Remove the combining marks on Latin, Greek, Cyrillic and common characters (the skeleton keeps them:
 * `ł` is `l` with a stroke, `i̇` an `i` with a dot). Marks are letters' vowels in other scripts, where
 * they stay.
 */
function withoutMarks(text: string): string {
  let out = "";
  let strip = false;
  for (const char of text) {
    if (!MARK.test(char)) strip = LATIN_LIKE.test(char);
    else if (strip) continue;
    out += char;
  }
  return out;
}

/** The two look-alike keys of a name (see {@linkcode nameSkeletons}). */
export interface NameSkeletons {
  /** Key of the name in any case: the skeleton of the lower-cased skeleton of its lower-cased form, unmarked. */
  folded: string;
  /** Key of the name as shown: its skeleton, unmarked (`I` and `l` look alike, `I` and `i` do not). */
  shown: string;
}

/**
 * The look-alike keys of a user name. A new name is refused when either key equals the same key of an
 * existing account: `folded` catches look-alikes in any case (`аlice`, `ALİCE`, `ałice` and `alice`),
 * `shown` catches names that look alike as shown (`aIice` and `alice`). Beyond UTS #39, combining
 * marks on Latin, Greek and Cyrillic letters are ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameSkeletons } from "./confusable_skeleton.ts";
 * const alice = nameSkeletons("alice", "alice");
 * assert(nameSkeletons("ALİCE", "ali\u0307ce").folded === alice.folded);
 * assert(nameSkeletons("aIice", "aiice").shown === alice.shown);
 * ```
 *
 * @param name The name as stored (as chosen, case kept).
 * @param key Its lower-cased key.
 * @returns Both keys.
 */
export function nameSkeletons(name: string, key: string): NameSkeletons {
  return {
    folded: withoutMarks(skeleton(skeleton(key).toLowerCase())),
    shown: withoutMarks(skeleton(name)),
  };
}
