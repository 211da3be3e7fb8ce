import assert from "node:assert/strict";
import { dictionary } from "@zxcvbn-ts/language-common";
import {
  checkPassword,
  DEFAULT_MIN_PASSWORD_CHARS,
  MAX_PASSWORD_CHARS,
} from "../../lib/auth/password_policy.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

const COMMON = dictionary["passwords-common"] as string[];

async function refused(
  password: string,
  reason: string,
  options: Parameters<typeof checkPassword>[1] = {},
): Promise<void> {
  await assert.rejects(checkPassword(password, options), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, "PASSWORD_POLICY");
    assert.equal(err.details.reason, reason, err.message);
    return true;
  });
}

/** 4 distinct ASCII characters, repeated: not common, not a name. */
const filler = (n: number) => "Zq8!".repeat(Math.ceil(n / 4)).slice(0, n);

Deno.test("checkPassword refuses 9 characters and accepts 10 by default", async () => {
  assert.equal(DEFAULT_MIN_PASSWORD_CHARS, 10);
  await refused(filler(9), "too_short");
  assert.equal(await checkPassword(filler(10)), filler(10));
});

Deno.test("checkPassword takes a configurable minimum length", async () => {
  await refused(filler(15), "too_short", { minLength: 16 });
  assert.equal(await checkPassword(filler(16), { minLength: 16 }), filler(16));
  assert.equal(await checkPassword(filler(4), { minLength: 4 }), filler(4));
});

Deno.test("checkPassword counts code points, not UTF-16 units", async () => {
  // U+10400 is one code point and two UTF-16 units (assigned in Unicode 3.1, so SASLprep keeps it).
  const nine = "\u{10400}".repeat(9);
  assert.equal(nine.length, 18);
  await refused(nine, "too_short");
  assert.equal(await checkPassword("\u{10400}".repeat(10)), "\u{10400}".repeat(10));
  await refused("\u{10400}".repeat(11), "too_short", { minLength: 12 });
  await refused("\u{10400}".repeat(MAX_PASSWORD_CHARS + 1), "too_long");
  assert.ok(await checkPassword("\u{10400}".repeat(MAX_PASSWORD_CHARS)));
});

Deno.test("checkPassword refuses more than 256 characters", async () => {
  assert.equal(MAX_PASSWORD_CHARS, 256);
  assert.equal(await checkPassword(filler(256)), filler(256));
  await refused(filler(257), "too_long");
});

Deno.test("checkPassword refuses members of the zxcvbn common list in any case", async () => {
  assert.ok(COMMON.includes("iloveyou123"), "iloveyou123 is on the list");
  await refused("iloveyou123", "common");
  await refused("ILoveYou123", "common");
  const longOnes = COMMON.filter((p) =>
    [...p].length >= DEFAULT_MIN_PASSWORD_CHARS && !p.includes("authchat")
  );
  assert.ok(longOnes.length > 100);
  for (const p of longOnes.slice(0, 50)) await refused(p, "common");
});

Deno.test("checkPassword refuses a password containing the user name, case-insensitively", async () => {
  await refused("my-Alice-Rocks-42", "contains_username", { username: "alice" });
  await refused("QUINTESSA", "contains_username", { username: "Quintessa", minLength: 4 });
  await refused("LongUserName1", "contains_username", { username: "longusername1" });
  // Names shorter than three characters only match the whole password.
  assert.equal(await checkPassword("bobcat-river-42", { username: "bo" }), "bobcat-river-42");
  await refused("qz", "contains_username", { username: "QZ", minLength: 2 });
});

Deno.test("checkPassword refuses a password containing the service name", async () => {
  await refused("my-AuthChat-key-9", "contains_service");
  await refused("xxauthchatxx", "contains_service");
});

Deno.test("checkPassword refuses prohibited characters", async () => {
  await refused("bell\u0007-rings-twice", "prohibited_character");
  await refused("nul\u0000-byte-password", "prohibited_character");
  await refused("private-use-\uE000-char", "prohibited_character");
});

Deno.test("checkPassword accepts emoji: passwords are SASLprep query strings (RFC 5802 §2.2)", async () => {
  // Emoji are unassigned in SASLprep's Unicode 3.2 tables; a password may still hold any Unicode.
  assert.equal(await checkPassword("rocket-\u{1F680}-to-the-moon"), "rocket-\u{1F680}-to-the-moon");
});

Deno.test("checkPassword accepts a long passphrase and returns it NFKC-normalised", async () => {
  const typed = "\uFB01nd the \u2168 Ｋｅｙｓ under ① quiet mossy stones";
  const prepared = await checkPassword(typed, { username: "alice" });
  assert.equal(prepared, typed.normalize("NFKC"));
  assert.equal(prepared, "find the IX Keys under 1 quiet mossy stones");
  assert.equal(await checkPassword("correct horse battery staple"), "correct horse battery staple");
});

Deno.test("checkPassword maps non-ASCII spaces to U+0020 before checking", async () => {
  assert.equal(await checkPassword("correct\u00A0horse\u3000battery"), "correct horse battery");
});
