import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { busToken } from "../../lib/cluster/nats_bus.ts";

/** base64url of the UTF-8 bytes, unpadded, by another implementation (`node:buffer`). */
function expected(text: string): string {
  return text === "" ? "_" : Buffer.from(text, "utf8").toString("base64url");
}

Deno.test("busToken: base64url of the UTF-8 bytes, unpadded, one NATS subject token", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 64 }), (text) => {
      const token = busToken(text);
      assert.equal(token, expected(text));
      assert.match(token, /^[A-Za-z0-9_-]+$/, "no dot, space, wildcard or padding");
      assert.equal(busToken(text), token, "the same text again: the same token");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("busToken: right after its memory of tokens fills and is forgotten", () => {
  // More names than it remembers (4,096), each asked twice, the first ones again at the end.
  const names = Array.from({ length: 10_000 }, (_, i) => `user-${i}-ü`);
  for (const name of names) assert.equal(busToken(name), expected(name));
  for (const name of names) assert.equal(busToken(name), expected(name));
  for (const name of names.slice(0, 100)) assert.equal(busToken(name), expected(name));
  assert.equal(busToken(""), "_");
  assert.notEqual(busToken("a"), busToken("b"));
});
