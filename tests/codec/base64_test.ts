import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";

Deno.test("encodeBase64 gives padded standard base64, as node:buffer does (property)", () => {
  assert.equal(encodeBase64(new Uint8Array([110, 44, 44])), "biws");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      assert.equal(encodeBase64(bytes), Buffer.from(bytes).toString("base64"));
    }),
  );
});

Deno.test("decodeBase64 inverts encodeBase64 (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      assert.deepEqual(decodeBase64(encodeBase64(bytes)), bytes);
    }),
  );
});

Deno.test("decodeBase64 decodes canonical text, including the empty string", () => {
  assert.deepEqual(decodeBase64("biws"), new Uint8Array([110, 44, 44]));
  assert.deepEqual(decodeBase64("biw="), new Uint8Array([110, 44]));
  assert.deepEqual(decodeBase64("YQ=="), new Uint8Array([97]));
  assert.deepEqual(decodeBase64(""), new Uint8Array(0));
});

Deno.test("decodeBase64 refuses non-canonical base64", () => {
  const refused = [
    "biw", // missing padding
    "YQ", // missing padding
    "biws\n", // trailing newline
    " biws", // leading space
    "bi ws", // inner space
    "biws    ", // white space making up a whole quantum
    "\tbiw", // white space in place of a character
    "b\niwsA==", // a newline inside
    "biws=", // padding after a full quantum
    "bg===", // too much padding
    "b===", // impossible padding
    "=", // padding alone
    "bi=s", // padding in the middle
    "bix=", // non-zero trailing bits
    "YR==", // non-zero trailing bits
    "a-_b", // URL-safe alphabet
    "biws====",
    "YQ==YQ==", // padding before more data
  ];
  for (const text of refused) assert.equal(decodeBase64(text), null, JSON.stringify(text));
});

Deno.test("decodeBase64 returns null rather than throwing on any string (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
      const out = decodeBase64(text);
      // Whatever it accepts must re-encode to exactly the same text: one value, one encoding.
      if (out !== null) assert.equal(encodeBase64(out), text);
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeBase64 accepts only re-encodable text among base64-alphabet strings (property)", () => {
  const alphabet = fc.constantFrom(
    ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".split(""),
  );
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 16 }).map((a) => a.join("")), (text) => {
      const out = decodeBase64(text);
      if (out !== null) assert.equal(encodeBase64(out), text);
    }),
    { numRuns: 1000 },
  );
});
