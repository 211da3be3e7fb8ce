import assert from "node:assert/strict";
import { array, boolean, integer, literal, object, optional, string } from "../../lib/codec/schema.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

function badMessage(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "BAD_MESSAGE");
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("string checks type, length bounds in UTF-16 units, and pattern", () => {
  const v = string({ min: 2, max: 4, pattern: /^[a-z]+$/ });
  assert.equal(v("abc", "f"), "abc");
  badMessage(() => v(1, "f"), "Invalid field f: expected a string");
  badMessage(() => v("abcde", "f"), "Invalid field f: longer than 4 characters");
  badMessage(() => v("a", "f"), "Invalid field f: shorter than 2 characters");
  badMessage(() => v("ab1", "f"), "Invalid field f: has an invalid format");
  // One astral character is two UTF-16 units.
  badMessage(() => string({ max: 1 })("\u{1F600}", "f"), "Invalid field f: longer than 1 characters");
});

Deno.test("integer refuses non-integers and values outside its bounds", () => {
  const v = integer(0, 10);
  assert.equal(v(0, "n"), 0);
  assert.equal(v(10, "n"), 10);
  for (const bad of [1.5, NaN, Infinity, "3", null]) {
    badMessage(() => v(bad, "n"), "Invalid field n: expected an integer");
  }
  badMessage(() => v(11, "n"), "Invalid field n: out of range 0..10");
  badMessage(() => v(-1, "n"), "Invalid field n: out of range 0..10");
});

Deno.test("boolean and literal accept only their values", () => {
  assert.equal(boolean()(false, "b"), false);
  badMessage(() => boolean()(0, "b"), "Invalid field b: expected true or false");
  const l = literal("A", "B");
  assert.equal(l("B", "l"), "B");
  badMessage(() => l("C", "l"), "Invalid field l: expected one of A, B");
});

Deno.test("array bounds its length and names the failing element", () => {
  const v = array(integer(0, 9), 3);
  assert.deepEqual(v([1, 2, 3], "xs"), [1, 2, 3]);
  badMessage(() => v([1, 2, 3, 4], "xs"), "Invalid field xs: more than 3 elements");
  badMessage(() => v([1, "2"], "xs"), "Invalid field xs[1]: expected an integer");
  badMessage(() => v({ length: 1 }, "xs"), "Invalid field xs: expected a list");
});

Deno.test("optional reads undefined and null as absent and validates anything else", () => {
  const v = optional(integer(0, 9));
  assert.equal(v(undefined, "o"), undefined);
  assert.equal(v(null, "o"), undefined);
  assert.equal(v(4, "o"), 4);
  badMessage(() => v("4", "o"), "Invalid field o: expected an integer");
});

Deno.test("object refuses unknown fields unless allowExtra, and reports missing ones by path", () => {
  const shape = { a: integer(0, 9), b: optional(string({ max: 3 })) };
  const strict = object(shape);
  assert.deepEqual(strict({ a: 1 }, "m"), { a: 1 });
  assert.deepEqual(strict({ a: 1, b: "x" }, "m"), { a: 1, b: "x" });
  assert.equal("b" in strict({ a: 1, b: null }, "m"), false);
  badMessage(() => strict({ a: 1, c: 2 }, "m"), "Invalid field m.c: unknown field");
  badMessage(() => strict({}, "m"), "Invalid field m.a: missing");
  badMessage(() => strict([], "m"), "Invalid field m: expected an object");
  const loose = object(shape, { allowExtra: true });
  assert.deepEqual(loose({ a: 1, c: 2 }, "m"), { a: 1 });
});

Deno.test("object does not read required fields from the prototype chain", () => {
  const v = object({ a: integer(0, 9) });
  const inherited = Object.create({ a: 1 }) as Record<string, unknown>;
  badMessage(() => v(inherited, "m"), "Invalid field m.a: missing");
});
