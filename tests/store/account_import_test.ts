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

/** A second import of the same file keeps every account the first made or found, and rejects the same lines. */
function assertRerun(first: ImportOutcome[], again: ImportOutcome[], message?: string): void {
  assert.deepEqual(
    again.map((o) => [o.line, o.status]),
    first.map((o) => [o.line, o.status === "rejected" ? "rejected" : "kept"]),
    message,
  );
}

Deno.test("splitUserLines handles CRLF, a BOM, and passwords containing ':'", () => {
  const { lines, rejected } = splitUserLines("\uFEFFalice:pw:with:colons\r\nbob:x\n");
  assert.deepEqual(lines, [
    { line: 1, user: "alice", rest: "pw:with:colons" },
    { line: 2, user: "bob", rest: "x" },
  ]);
  assert.deepEqual(rejected, []);
});

Deno.test("splitUserLines skips blank lines and comments, and rejects lines without ':' with their numbers", () => {
  const text = "# users of the old server\na:1\n\nnoseparator\n   \r\n  # indented: comment\nb:2\n\n";
  const { lines, rejected } = splitUserLines(text);
  assert.deepEqual(lines.map((l) => [l.line, l.user]), [[2, "a"], [7, "b"]]);
  assert.deepEqual(rejected, [
    { line: 4, user: "", status: "rejected", reason: "no ':' between user and value" },
  ]);
  assert.deepEqual(splitUserLines(""), { lines: [], rejected: [] });
  assert.deepEqual(splitUserLines("\n\n#x\n"), { lines: [], rejected: [] });
  assert.deepEqual(splitUserLines(":pw").lines, [{ line: 1, user: "", rest: "pw" }]);
  assert.deepEqual(splitUserLines("a#b:pw").lines, [{ line: 1, user: "a#b", rest: "pw" }], "# inside a name");
});

/** The legacy file of the tests below, one line per case. */
const LEGACY = [
  "\uFEFF# exported from the old challenge-response server",
  "alice:correct-horse-battery",
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
  "gus:",
  "hal:\u00AD",
  "ivy:bell\u0007-long-enough-pw",
  "jan:my-authchat-passphrase",
  `kay:${"kx".repeat(150)}`,
  "user10:password10",
].join("\r\n") + "\r\n";

Deno.test("importLegacyUsers creates, flags weak passwords, keeps existing users and rejects the rest", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await createAccount(store, { user: "frank", password: "mossy-stone-garden-7" }, SETTINGS);
    const frank = await store.findUser("frank");
    const progress: [number, number][] = [];
    const outcomes = await importLegacyUsers(store, LEGACY, {
      ...SETTINGS,
      onProgress: (done, total) => progress.push([done, total]),
    });
    const policy = "(PASSWORD_POLICY)";
    assert.deepEqual(outcomes.map(brief), [
      [2, "alice", "rejected", "same user on lines 2, 5: none imported"],
      [3, "bob", "flagged", "password is too short: 5 characters is shorter than 10"],
      [5, "ALICE", "rejected", "same user on lines 2, 5: none imported"],
      [6, "carol", "flagged", "password is too common"],
      [7, "dave", "flagged", "password contains the user name"],
      [8, "", "rejected", "no ':' between user and value"],
      [9, "bad name", "rejected", "Invalid username: it contains white space (INVALID_USERNAME)"],
      [10, "erin", "created", ""],
      [11, "frank", "kept", "already exists"],
      [13, "gus", "rejected", `Password refused: it is empty ${policy}`],
      [14, "hal", "rejected", `Password refused: it is empty ${policy}`],
      [15, "ivy", "rejected", `Password refused: it contains a control or private use character ${policy}`],
      [16, "jan", "flagged", "password contains the service name"],
      [17, "kay", "flagged", "password is too long: 300 characters is longer than 256"],
      [18, "user10", "flagged", "password is too common"],
    ]);
    // Progress covers the lines that reached account creation: 3, 6, 7, 10, 11 and 13 to 18.
    assert.deepEqual(progress, Array.from({ length: 11 }, (_, i) => [i + 1, 11]));
    assert.equal(await store.countUsers(), 8);
    assert.deepEqual(await store.findUser("frank"), frank, "an existing account is left as it was");
    for (
      const [user, password, flagged] of [
        ["erin", "pass:with:colons:ok-long", false],
        ["bob", "short", true],
        ["carol", "iloveyou123", true],
        ["dave", "dave-rocks-forever", true],
        ["jan", "my-authchat-passphrase", true],
        ["kay", "kx".repeat(150), true],
        ["user10", "password10", true],
      ] as const
    ) {
      const record = await store.findUser(user);
      assert.ok(record, user);
      assert.equal(record.mustChangePassword, flagged, user);
      assert.equal(parseVerifier(record.verifier).iterations, 4096);
      await scramLogin(record.verifier, user, password);
    }
    await assert.rejects(scramLogin((await store.findUser("erin"))!.verifier, "erin", "pass"), ProtocolError);
    assert.equal(await store.findUser("alice"), undefined, "an ambiguous name is not imported");
    for (const user of ["gus", "hal", "ivy"]) assert.equal(await store.findUser(user), undefined, user);
  } finally {
    store.close();
  }
});

Deno.test("importLegacyUsers run again keeps every account it made and rejects the same lines", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const first = await importLegacyUsers(store, LEGACY, SETTINGS);
    const records = await Promise.all(["bob", "erin", "user10"].map((u) => store.findUser(u)));
    const again = await importLegacyUsers(store, LEGACY, SETTINGS);
    assertRerun(first, again);
    const count = (list: ImportOutcome[], status: string) => list.filter((o) => o.status === status).length;
    assert.deepEqual([count(first, "created"), count(first, "flagged"), count(first, "kept")], [2, 6, 0]);
    assert.deepEqual([count(again, "created"), count(again, "flagged"), count(again, "kept")], [0, 0, 8]);
    assert.deepEqual(await Promise.all(["bob", "erin", "user10"].map((u) => store.findUser(u))), records);
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
    const lee = await createAccount(store, { user: "lee", password: "mossy-stone-garden-7" }, SETTINGS);
    const ginny = pgVerifier("Tr0ub4dor&3-horse");
    const kim = pgVerifier("another secret phrase");
    const key32 = Buffer.alloc(32, 1).toString("base64");
    const text = [
      `ginny:${ginny}`,
      `hank:SCRAM-SHA-256$4096:abc$${key32}:${key32}`,
      `ivan:SCRAM-SHA-256$1000:c2FsdHNhbHQ=$${key32}:${key32}`,
      "judy:md5abcdef0123456789",
      `bad name:${pgVerifier("x")}`,
      `LEE:${pgVerifier("y")}`,
      "",
      "noseparator",
      `kim:${kim}`,
      "# moe is there twice",
      `moe:${pgVerifier("one")}`,
      `MOE:${pgVerifier("two")}`,
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
      [6, "LEE", "kept", "already exists"],
      [8, "", "rejected", "no ':' between user and value"],
      [9, "kim", "created", ""],
      [11, "moe", "rejected", "same user on lines 11, 12: none imported"],
      [12, "MOE", "rejected", "same user on lines 11, 12: none imported"],
    ]);
    assert.equal(calls, 6);
    assert.deepEqual(await store.findUser("lee"), lee, "an existing account is left as it was");
    assert.equal(await store.findUser("moe"), undefined);
    const stored = await store.findUser("ginny");
    assert.equal(stored?.verifier, ginny, "stored verbatim");
    assert.equal(stored?.createdAt, 42);
    assert.equal(stored?.mustChangePassword, false, "nobody knows the password: it is not flagged");
    await scramLogin(stored!.verifier, "ginny", "Tr0ub4dor&3-horse");
    await scramLogin((await store.findUser("kim"))!.verifier, "KIM", "another secret phrase");
    await assert.rejects(scramLogin(stored!.verifier, "ginny", "Tr0ub4dor&3"), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, "AUTH_FAILED");
      return true;
    });
    const again = await importVerifiers(store, text, { now: 43 });
    assertRerun(outcomes, again, "run again, what it created is kept");
  } finally {
    store.close();
  }
});

Deno.test("importLegacyUsers rejects, with line and reason, names that look like an account's or another line's", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await createAccount(store, { user: "alice", password: "mossy-stone-garden-7" }, SETTINGS);
    const text = [
      "\u0430lice:quiet-river-stones-9", // Cyrillic а: looks like the account alice
      "erin:quiet-river-stones-9",
      "b\u043Eb:quiet-river-stones-9", // Cyrillic о: looks like line 5
      "# a comment",
      "bob:quiet-river-stones-9",
      "I\u2665NY:quiet-river-stones-9", // refused by PRECIS
      "carol:quiet-river-stones-9",
      "\uFF43\uFF41\uFF52\uFF4F\uFF4C:quiet-river-stones-9", // fullwidth: carol itself, a second time
      "dave:quiet-river-stones-9",
    ].join("\n");
    const outcomes = await importLegacyUsers(store, text, SETTINGS);
    assert.deepEqual(outcomes.map(brief), [
      [1, "\u0430lice", "rejected", "User name looks like an existing account's: \u0430lice (USER_EXISTS)"],
      [2, "erin", "created", ""],
      [3, "b\u043Eb", "rejected", "names that look alike on lines 3, 5: none imported"],
      [5, "bob", "rejected", "names that look alike on lines 3, 5: none imported"],
      [
        6,
        "I\u2665NY",
        "rejected",
        "Invalid username: U+2665 is not allowed in a new user name " +
        "(letters, digits, combining marks and printable ASCII only) (INVALID_USERNAME)",
      ],
      [7, "carol", "rejected", "same user on lines 7, 8: none imported"],
      [8, "\uFF43\uFF41\uFF52\uFF4F\uFF4C", "rejected", "same user on lines 7, 8: none imported"],
      [9, "dave", "created", ""],
    ]);
    assert.equal(await store.countUsers(), 3);
    assert.equal(await store.findUser("\u0430lice"), undefined);
    assertRerun(
      outcomes,
      await importLegacyUsers(store, text, SETTINGS),
      "run again, the same lines rejected",
    );
  } finally {
    store.close();
  }
});

Deno.test("importVerifiers rejects a name that looks like an account's, and keeps the account itself", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await createAccount(store, { user: "alice", password: "mossy-stone-garden-7" }, SETTINGS);
    const text = [`a\u0142ice:${pgVerifier("y")}`, `bob:${pgVerifier("z")}`].join("\n");
    assert.deepEqual((await importVerifiers(store, text)).map(brief), [
      [1, "a\u0142ice", "rejected", "User name looks like an existing account's: a\u0142ice (USER_EXISTS)"],
      [2, "bob", "created", ""],
    ]);
    assert.deepEqual((await importVerifiers(store, `ALICE:${pgVerifier("x")}`)).map(brief), [
      [1, "ALICE", "kept", "already exists"],
    ]);
    assert.equal(await store.countUsers(), 2);
  } finally {
    store.close();
  }
});
