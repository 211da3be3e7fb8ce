import assert from "node:assert/strict";
import { MAX_USERNAME_CHARS, prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

function refused(raw: string, reason: string): void {
  assert.throws(() => prepareUsername(raw), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, "INVALID_USERNAME");
    assert.equal(err.details.reason, reason, `${JSON.stringify(raw)}: ${err.message}`);
    return true;
  });
}

Deno.test("prepareUsername keeps the chosen case and keys names case-insensitively", () => {
  assert.deepEqual(prepareUsername("Alice"), { name: "Alice", key: "alice" });
  assert.equal(prepareUsername("ALICE").key, prepareUsername("alice").key);
  assert.equal(prepareUsername("ÉLODIE").key, "élodie");
  assert.notEqual(prepareUsername("alice").key, prepareUsername("alicia").key);
});

Deno.test("prepareUsername applies SASLprep before checking", () => {
  assert.deepEqual(prepareUsername("I\u00ADX"), { name: "IX", key: "ix" });
  assert.deepEqual(prepareUsername("\u2168"), { name: "IX", key: "ix" });
});

Deno.test("prepareUsername allows 64 code points and refuses 65, counting code points not UTF-16 units", () => {
  assert.equal(MAX_USERNAME_CHARS, 64);
  assert.equal(prepareUsername("a".repeat(64)).name.length, 64);
  refused("a".repeat(65), "too_long");
  // U+10400 DESERET CAPITAL LONG I: one code point, two UTF-16 units, assigned in Unicode 3.1.
  // 63 of them (252 bytes of UTF-8; 64 would pass the 255-byte datagram limit).
  const deseret = "\u{10400}".repeat(63);
  assert.equal(deseret.length, 126);
  assert.equal(prepareUsername(deseret).name, deseret);
  refused("\u{10400}".repeat(65), "too_long");
});

Deno.test("prepareUsername refuses white space, including spaces SASLprep maps to U+0020", () => {
  for (const raw of ["a b", " alice", "alice ", "a\u00A0b", "a\u3000b"]) refused(raw, "whitespace");
});

Deno.test("prepareUsername refuses a colon", () => {
  refused("a:b", "colon");
  refused(":", "colon");
});

Deno.test("prepareUsername refuses control and NUL characters", () => {
  for (const raw of ["a\u0000b", "a\tb", "a\nb", "a\rb", "a\u007fb", "a\u0085b", "a\u2028b", "\u0007"]) {
    refused(raw, "prohibited_character");
  }
});

Deno.test("prepareUsername refuses an empty name as empty", () => {
  refused("", "empty");
});

Deno.test("prepareUsername refuses a name that SASLprep maps to nothing as empty", () => {
  refused("\u00AD", "empty");
});

Deno.test("prepareUsername leaves SQL metacharacters unchanged", () => {
  for (const raw of ["o'brien", "x';DROP/**/TABLE/**/users;--", "a%_b", 'q"uote\\', "semi;colon"]) {
    const { name, key } = prepareUsername(raw);
    assert.equal(name, raw);
    assert.equal(key, raw.toLowerCase());
  }
});

Deno.test("prepareUsername refuses a name or key longer than 255 bytes of UTF-8 (the datagram limit)", () => {
  assert.equal(prepareUsername("\u{20000}".repeat(63)).name.length, 126);
  refused("\u{20000}".repeat(64), "too_long");
});

Deno.test("prepareUsername refuses a name whose lower-case key is not itself a valid name", () => {
  // U+04C0 lower-cases to U+04CF, unassigned in Unicode 3.2: the key could never be looked up.
  refused("\u04C0x", "prohibited_character");
  assert.equal(prepareUsername("İstanbul").key, "i̇stanbul");
});
