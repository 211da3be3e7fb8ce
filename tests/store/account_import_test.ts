import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { importLegacyUsers, importVerifiers, splitUserLines } from "../../lib/store/account_import.ts";
import type { ImportOutcome } from "../../lib/store/account_import.ts";
import { createAccount } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { allFileBytes, scramLogin, withTempDir } from "./_helpers.ts";

const SETTINGS = { iterations: 4096, minPasswordLength: 10, now: 1_700_000_000_000 };

/** A PostgreSQL-format verifier built with node:crypto only. */
function pgVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${
    serverKey.toString("base64")
  }`;
}

const brief = (o: ImportOutcome) => [o.line, o.user, o.status, o.reason ?? ""] as const;

Deno.test("splitUserLines handles CRLF, a BOM, and passwords containing ':'", () => {
  const { lines, rejected } = splitUserLines("\uFEFFalice:pw:with:colons\r\nbob:x\n");
  assert.deepEqual(lines, [
    { line: 1, user: "alice", rest: "pw:with:colons" },
    { line: 2, user: "bob", rest: "x" },
  ]);
  assert.deepEqual(rejected, []);
});

Deno.test("splitUserLines rejects blank lines and lines without ':' with their line numbers", () => {
  const { lines, rejected } = splitUserLines("a:1\n\nnoseparator\n   \r\nb:2\n\n");
  assert.deepEqual(lines.map((l) => [l.line, l.user]), [[1, "a"], [5, "b"]]);
  assert.deepEqual(rejected, [
    { line: 2, user: "", status: "rejected", reason: "empty line" },
    { line: 3, user: "", status: "rejected", reason: "no ':' between user and value" },
    { line: 4, user: "", status: "rejected", reason: "empty line" },
    { line: 6, user: "", status: "rejected", reason: "empty line" },
  ]);
  assert.deepEqual(splitUserLines(""), { lines: [], rejected: [] });
  assert.deepEqual(splitUserLines(":pw").lines, [{ line: 1, user: "", rest: "pw" }]);
});

Deno.test("importLegacyUsers creates valid accounts and reports every other line with its reason", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await createAccount(store, { user: "frank", password: "mossy-stone-garden-7" }, SETTINGS);
    const text = [
      "\uFEFFalice:correct-horse-battery",
      "bob:short",
      "",
      "ALICE:another-good-passphrase",
      "carol:iloveyou123",
      "dave:dave-rocks-forever",
      "noseparator",
      "bad name:some-good-passphrase",
      "erin:pass:with:colons:ok-long",
      "frank:quiet-river-stones-9",
      "   ",
    ].join("\r\n") + "\r\n";
    const progress: [number, number][] = [];
    const outcomes = await importLegacyUsers(store, text, {
      ...SETTINGS,
      onProgress: (done, total) => progress.push([done, total]),
    });
    assert.deepEqual(outcomes.map(brief), [
      [1, "alice", "rejected", "same user on lines 1, 4: none imported"],
      [2, "bob", "rejected", "Password refused: 5 characters is shorter than 10 (PASSWORD_POLICY)"],
      [3, "", "rejected", "empty line"],
      [4, "ALICE", "rejected", "same user on lines 1, 4: none imported"],
      [5, "carol", "rejected", "Password refused: it is on the list of common passwords (PASSWORD_POLICY)"],
      [6, "dave", "rejected", "Password refused: it contains the user name (PASSWORD_POLICY)"],
      [7, "", "rejected", "no ':' between user and value"],
      [8, "bad name", "rejected", "Invalid username: it contains white space (INVALID_USERNAME)"],
      [9, "erin", "created", ""],
      [10, "frank", "rejected", "User already exists: frank (USER_EXISTS)"],
      [11, "", "rejected", "empty line"],
    ]);
    assert.equal(await store.countUsers(), 2);
    // Progress covers the lines that reached account creation: 2, 5, 6, 9, 10.
    assert.deepEqual(progress, [[1, 5], [2, 5], [3, 5], [4, 5], [5, 5]]);
    const erin = await store.findUser("erin");
    assert.ok(erin);
    assert.equal(parseVerifier(erin.verifier).iterations, 4096);
    await scramLogin(erin.verifier, "erin", "pass:with:colons:ok-long");
    await assert.rejects(scramLogin(erin.verifier, "erin", "pass"), ProtocolError);
    assert.equal(await store.findUser("alice"), undefined, "an ambiguous name is not imported");
  } finally {
    store.close();
  }
});

Deno.test("importLegacyUsers never writes a plaintext password to the database files", async () => {
  await withTempDir(async (dir, file) => {
    const passwords = ["Plaintext-Canary-One-42", "pass:with:Canary:Two", "Canary-Three-is-here"];
    const text = passwords.map((p, i) => `user${i}:${p}`).join("\n");
    const store = SqliteUserStore.open(file);
    const haystacks: Uint8Array[] = [];
    try {
      const outcomes = await importLegacyUsers(store, text, { ...SETTINGS, concurrency: 3 });
      assert.deepEqual(outcomes.map((o) => o.status), ["created", "created", "created"]);
      haystacks.push(...await allFileBytes(dir)); // database, WAL and shared memory while open
    } finally {
      store.close();
    }
    haystacks.push(...await allFileBytes(dir));
    assert.ok(haystacks.some((h) => Buffer.from(h).includes("user2")), "the search does find stored text");
    for (const password of passwords) {
      for (const needle of [password, password.split(":").at(-1)!]) {
        for (const h of haystacks) {
          assert.equal(Buffer.from(h).includes(needle), false, `found ${needle}`);
          assert.equal(
            Buffer.from(h).includes(Buffer.from(needle, "utf16le")),
            false,
            `found UTF-16 ${needle}`,
          );
        }
      }
    }
  });
});

Deno.test("importVerifiers imports node:crypto verifiers that then log in with the original password", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const ginny = pgVerifier("Tr0ub4dor&3-horse");
    const kim = pgVerifier("another secret phrase");
    const key32 = Buffer.alloc(32, 1).toString("base64");
    const text = [
      `ginny:${ginny}`,
      `hank:SCRAM-SHA-256$4096:abc$${key32}:${key32}`,
      `ivan:SCRAM-SHA-256$1000:c2FsdHNhbHQ=$${key32}:${key32}`,
      "judy:md5abcdef0123456789",
      `bad name:${pgVerifier("x")}`,
      `GINNY:${pgVerifier("y")}`,
      "",
      "noseparator",
      `kim:${kim}`,
    ].join("\r\n");
    let calls = 0;
    const outcomes = await importVerifiers(store, text, { now: 42, onProgress: () => calls++ });
    assert.deepEqual(outcomes.map(brief), [
      [1, "ginny", "created", ""],
      [2, "hank", "rejected", "Invalid verifier salt: not base64"],
      [3, "ivan", "rejected", "Iteration count out of range: 1000 is not within 4096..10000000"],
      [
        4,
        "judy",
        "rejected",
        "Not a SCRAM-SHA-256 verifier: expected SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>",
      ],
      [5, "bad name", "rejected", "Invalid username: it contains white space (INVALID_USERNAME)"],
      [6, "GINNY", "rejected", "User already exists: GINNY (USER_EXISTS)"],
      [7, "", "rejected", "empty line"],
      [8, "", "rejected", "no ':' between user and value"],
      [9, "kim", "created", ""],
    ]);
    assert.equal(calls, 7);
    const stored = await store.findUser("ginny");
    assert.equal(stored?.verifier, ginny, "stored verbatim");
    assert.equal(stored?.createdAt, 42);
    await scramLogin(stored!.verifier, "ginny", "Tr0ub4dor&3-horse");
    await scramLogin((await store.findUser("kim"))!.verifier, "KIM", "another secret phrase");
    await assert.rejects(scramLogin(stored!.verifier, "ginny", "Tr0ub4dor&3"), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, "AUTH_FAILED");
      return true;
    });
  } finally {
    store.close();
  }
});
