import assert from "node:assert/strict";
import { MAX_USERNAME_CHARS, prepareNewUsername, prepareUsername } from "../../lib/auth/username.ts";
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

function refusedAsNew(raw: string, reason: string): void {
  assert.throws(() => prepareNewUsername(raw), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, "INVALID_USERNAME");
    assert.equal(err.details.reason, reason, `${JSON.stringify(raw)}: ${err.message}`);
    return true;
  });
}

Deno.test("prepareNewUsername keeps the chosen case and the key prepareUsername finds the account by", () => {
  assert.deepEqual(prepareNewUsername("Alice"), { name: "Alice", key: "alice" });
  assert.deepEqual(prepareNewUsername("\u00C9LODIE"), prepareUsername("\u00C9LODIE"));
  for (const raw of ["alice", "Bob_2", "o'brien", "\u05E9\u05DC\u05D5\u05DD", "\u00E9lodie", "ca\u00DF"]) {
    assert.equal(prepareNewUsername(raw).key, prepareUsername(raw).key, raw);
  }
});

Deno.test("prepareNewUsername maps fullwidth names to the name they show", () => {
  assert.deepEqual(prepareNewUsername("\uFF21\uFF4C\uFF49\uFF43\uFF45"), { name: "Alice", key: "alice" });
  assert.equal(prepareUsername("\uFF21\uFF4C\uFF49\uFF43\uFF45").key, "alice", "found by the same key");
});

Deno.test("prepareNewUsername keeps the reasons of the old rules", () => {
  refusedAsNew("a b", "whitespace");
  refusedAsNew("a:b", "colon");
  refusedAsNew("a\u0000b", "prohibited_character");
  refusedAsNew("", "empty");
  refusedAsNew("a".repeat(65), "too_long");
});

Deno.test("prepareNewUsername refuses what PRECIS refuses, naming the code point, never showing it", () => {
  for (
    const raw of ["I\u2665NY", "\u2168ray", "\uFB01sh", "a\u200Db", "a\u00ADb", "a\u2013b", "\u{1D400}lice"]
  ) {
    refusedAsNew(raw, "disallowed_character");
  }
  assert.throws(() => prepareNewUsername("I\u2665NY"), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(
      err.message,
      "Invalid username: U+2665 is not allowed in a new user name " +
        "(letters, digits, combining marks and printable ASCII only)",
    );
    assert.ok(!err.message.includes("\u2665"));
    return true;
  });
});

Deno.test("prepareNewUsername applies the Bidi Rule to right-to-left names", () => {
  // SASLprep's bidi check, which every name passes, refuses most of what the Bidi Rule does, first.
  refusedAsNew("1\u05E9\u05DC\u05D5\u05DD", "prohibited_character");
  refusedAsNew("alice\u05E9", "prohibited_character");
  refusedAsNew("\u05E9\u05DC\u05D5\u05DD1", "prohibited_character");
  // What only the Bidi Rule refuses: Arabic-Indic digits first, and both kinds of digits together.
  refusedAsNew("\u0661\u0662", "bidi");
  refusedAsNew("\u05E9\u0661\u0031\u05E9", "bidi");
  assert.equal(prepareNewUsername("\u05E9\u05DC\u05D5\u05DD").name, "\u05E9\u05DC\u05D5\u05DD");
});

Deno.test("prepareNewUsername accepts each look-alike of alice as a name: refusing it is the store's work", () => {
  for (const raw of ["\u0430lice", "alic\u0435", "\u0251lice", "a\u0142ice", "AL\u0130CE"]) {
    assert.equal(prepareNewUsername(raw).name, raw.normalize("NFC"));
  }
});
