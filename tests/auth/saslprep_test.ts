import assert from "node:assert/strict";
import { saslPrep } from "../../lib/auth/saslprep.ts";

Deno.test("saslPrep maps and keeps strings as in the RFC 4013 §3 examples", () => {
  assert.equal(saslPrep("I\u00ADX"), "IX", "soft hyphen mapped to nothing");
  assert.equal(saslPrep("user"), "user", "no transformation");
  assert.equal(saslPrep("USER"), "USER", "case preserved");
  assert.equal(saslPrep("\u00AA"), "a", "output is NFKC");
  assert.equal(saslPrep("\u2168"), "IX", "output is NFKC");
});

Deno.test("saslPrep refuses the prohibited and bidi examples of RFC 4013 §3 with a RangeError", () => {
  assert.throws(() => saslPrep("\u0007"), { name: "RangeError", message: /^SASLprep refused the text/ });
  assert.throws(() => saslPrep("\u0627\u0031"), {
    name: "RangeError",
    message: /^SASLprep refused the text/,
  });
});

Deno.test("saslPrep maps non-ASCII spaces to a space and refuses unassigned code points", () => {
  assert.equal(saslPrep("a\u00A0b\u3000c"), "a b c");
  // U+0221 was unassigned in Unicode 3.2, the version RFC 4013 is bound to.
  assert.throws(() => saslPrep("\u0221"), RangeError);
  assert.throws(() => saslPrep("a\u0000b"), RangeError);
  assert.throws(() => saslPrep("\uE000"), RangeError, "private use");
});

Deno.test("saslPrep maps a string of soft hyphens to the empty string", () => {
  // RFC 4013 §2.1 maps U+00AD to nothing; the result is empty, which is not an error at this layer.
  assert.equal(saslPrep("\u00AD"), "");
  assert.equal(saslPrep("\u00AD\u00AD"), "");
});

Deno.test("saslPrep returns the empty string unchanged", () => {
  assert.equal(saslPrep(""), "");
});
