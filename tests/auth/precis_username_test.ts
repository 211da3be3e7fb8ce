import assert from "node:assert/strict";
import fc from "fast-check";
import {
  enforceUsernameCaseMapped,
  enforceUsernameCasePreserved,
  PrecisError,
} from "../../lib/auth/precis_username.ts";
import type { PrecisRefusal } from "../../lib/auth/precis_username.ts";

function refused(text: string, reason: PrecisRefusal, codePoint?: number): void {
  for (const enforce of [enforceUsernameCaseMapped, enforceUsernameCasePreserved]) {
    assert.throws(() => enforce(text), (err: unknown) => {
      assert.ok(err instanceof PrecisError, String(err));
      assert.equal(err.reason, reason, `${JSON.stringify(text)}: ${err.message}`);
      if (codePoint !== undefined) assert.equal(err.codePoint, codePoint, err.message);
      return true;
    });
  }
}

Deno.test("UsernameCaseMapped lower-cases and UsernameCasePreserved keeps the case", () => {
  assert.equal(enforceUsernameCaseMapped("Alice"), "alice");
  assert.equal(enforceUsernameCasePreserved("Alice"), "Alice");
  // RFC 8265 examples: printable ASCII is allowed, and so are letters of any script.
  for (const name of ["juliet@example.com", "fussball", "fußball", "π", "Σ", "σ", "ς", "o'brien"]) {
    assert.equal(enforceUsernameCasePreserved(name), name);
  }
  assert.equal(enforceUsernameCaseMapped("Σ"), "σ");
  assert.equal(enforceUsernameCaseMapped("ΟΔΟΣ"), "οδος", "JavaScript's toLowerCase applies Final_Sigma");
  // U+0130 lower-cases to i and COMBINING DOT ABOVE, both allowed.
  assert.equal(enforceUsernameCaseMapped("ALİCE"), "ali\u0307ce");
});

Deno.test("PRECIS maps fullwidth and halfwidth forms to their usual forms", () => {
  assert.equal(enforceUsernameCasePreserved("\uFF21\uFF4C\uFF49\uFF43\uFF45"), "Alice");
  assert.equal(enforceUsernameCaseMapped("\uFF21\uFF4C\uFF49\uFF43\uFF45"), "alice");
  assert.equal(enforceUsernameCasePreserved("\uFF71\uFF72"), "\u30A2\u30A4", "halfwidth katakana");
  // Mapped, then checked: a fullwidth space is still a space.
  refused("a\u3000b", "disallowed_character", 0x20);
});

Deno.test("PRECIS normalizes to NFC", () => {
  assert.equal(enforceUsernameCasePreserved("jose\u0301"), "jos\u00E9");
  assert.equal(enforceUsernameCaseMapped("JOSE\u0301"), "jos\u00E9");
});

Deno.test("PRECIS IdentifierClass refuses spaces, symbols, punctuation beyond ASCII and compatibility forms", () => {
  const cases: [string, number][] = [
    ["a b", 0x20],
    ["I\u2665NY", 0x2665], // a symbol
    ["smile\u{1F600}", 0x1f600], // an emoji
    ["a\u2013b", 0x2013], // EN DASH: punctuation outside ASCII
    ["\u2168ray", 0x2168], // ROMAN NUMERAL NINE: Nl, and a compatibility form
    ["\uFB01sh", 0xfb01], // the fi ligature
    ["\u{1D400}lice", 0x1d400], // MATHEMATICAL BOLD CAPITAL A
    ["\u01C5ungla", 0x01c5], // a titlecase digraph (Lt)
    ["x\u00B2", 0xb2], // SUPERSCRIPT TWO (No)
    ["\u212Bngstrom", 0x212b], // ANGSTROM SIGN: its canonical decomposition makes it a compatibility form
  ];
  for (const [text, cp] of cases) refused(text, "disallowed_character", cp);
});

Deno.test("PRECIS IdentifierClass refuses controls, invisible characters, noncharacters and unassigned code points", () => {
  const cases: [string, number][] = [
    ["a\u0000b", 0],
    ["a\tb", 9],
    ["a\u00ADb", 0xad], // SOFT HYPHEN: default-ignorable
    ["a\u200Bb", 0x200b], // ZERO WIDTH SPACE
    ["a\u2060b", 0x2060], // WORD JOINER
    ["a\u202Eb", 0x202e], // RIGHT-TO-LEFT OVERRIDE
    ["a\uFE0Fb", 0xfe0f], // VARIATION SELECTOR-16
    ["a\uFDD0b", 0xfdd0], // a noncharacter
    ["a\uE000b", 0xe000], // private use
    ["a\u{E0001}b", 0xe0001], // LANGUAGE TAG
    ["a\u0378b", 0x378], // unassigned
    ["\u1100\u1161", 0x1100], // conjoining (old) Hangul jamo
  ];
  for (const [text, cp] of cases) refused(text, "disallowed_character", cp);
  assert.equal(enforceUsernameCasePreserved("\uAC00"), "\uAC00", "a precomposed Hangul syllable is a letter");
});

Deno.test("PRECIS refuses ZERO WIDTH JOINER and NON-JOINER (stricter than the CONTEXTJ rules)", () => {
  refused("a\u200Db", "disallowed_character", 0x200d);
  // Even where RFC 5892 would allow it: after a virama, and between joining Arabic letters.
  refused("\u0915\u094D\u200D\u0937", "disallowed_character", 0x200d);
  refused("\u0628\u200C\u0628", "disallowed_character", 0x200c);
});

Deno.test("PRECIS applies the exceptions and contextual rules of RFC 5892", () => {
  assert.equal(enforceUsernameCasePreserved("ca\u00DF"), "ca\u00DF", "ß is PVALID by exception");
  refused("a\u0640b", "disallowed_character", 0x640); // ARABIC TATWEEL: DISALLOWED by exception
  assert.equal(enforceUsernameCasePreserved("col\u00B7lecci\u00F3"), "col\u00B7lecci\u00F3"); // l·l
  refused("a\u00B7b", "disallowed_character", 0xb7);
  assert.equal(enforceUsernameCasePreserved("\u0375\u03B1"), "\u0375\u03B1"); // KERAIA before Greek
  refused("\u0375a", "disallowed_character", 0x375);
  assert.equal(enforceUsernameCasePreserved("\u05D0\u05F3"), "\u05D0\u05F3"); // GERESH after Hebrew
  refused("a\u05F3", "disallowed_character", 0x5f3);
  assert.equal(enforceUsernameCasePreserved("\u30A2\u30FB\u30A4"), "\u30A2\u30FB\u30A4"); // among Katakana
  refused("a\u30FBb", "disallowed_character", 0x30fb);
  assert.equal(enforceUsernameCasePreserved("\u0628\u0661\u0662"), "\u0628\u0661\u0662");
  refused("\u0628\u0661\u06F2", "disallowed_character", 0x661); // two kinds of Arabic-Indic digits
});

Deno.test("PRECIS applies the Bidi Rule to right-to-left names only", () => {
  for (
    const name of ["\u05E9\u05DC\u05D5\u05DD", "\u05E9\u05DC\u05D5\u05DD1", "\u0645\u0631\u062D\u0628\u0627"]
  ) {
    assert.equal(enforceUsernameCaseMapped(name), name);
  }
  assert.equal(enforceUsernameCaseMapped("1alice"), "1alice", "no right-to-left character: no rule");
  refused("1\u05E9\u05DC\u05D5\u05DD", "bidi"); // begins with a digit
  refused("abc\u05E9", "bidi"); // a left-to-right name with a right-to-left letter
  refused("\u05E9abc", "bidi"); // and the other way round
  refused("\u05E9.", "bidi"); // a right-to-left name ending in a neutral
  refused("\u0628\u0661\u0031", "bidi"); // Arabic-Indic and European digits together
  refused("\u0661\u0662", "bidi"); // Arabic-Indic digits alone do not begin with a letter
  // Non-spacing marks may follow the last letter.
  assert.equal(enforceUsernameCaseMapped("\u05E9\u05C1"), "\u05E9\u05C1");
});

Deno.test("PRECIS refuses the empty string", () => {
  refused("", "empty");
});

/** Names from characters whose case mapping, width mapping or normalization changes them. */
const TRICKY_NAME = fc.array(
  fc.constantFrom(
    ..."aZ9_.İıßẞςΣσΐΆﬀＡｚ０ｶﾞ\u0301\u0307\u0338éÅ\u212Bǅ\u05E9\u05B8\u0628\u0661\u00B7l\u30FB\u30A2",
  ),
  { minLength: 1, maxLength: 8 },
).map((chars) => chars.join(""));

Deno.test("PRECIS enforcement is idempotent on whatever it accepts", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "grapheme", maxLength: 12 }), TRICKY_NAME), (text) => {
      for (const enforce of [enforceUsernameCaseMapped, enforceUsernameCasePreserved]) {
        let once: string;
        try {
          once = enforce(text);
        } catch (err) {
          if (err instanceof PrecisError) continue;
          throw err;
        }
        assert.equal(enforce(once), once);
      }
    }),
    { numRuns: 2000 },
  );
});
