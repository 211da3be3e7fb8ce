import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { createAccount, createLegacyAccount } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { scramLogin } from "./_helpers.ts";

const SETTINGS = { iterations: 4096, minPasswordLength: 10 };

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, reason?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code, err.message);
    if (reason !== undefined) assert.equal(err.details.reason, reason);
    return true;
  });
}

Deno.test("createAccount stores the prepared name and a verifier the password logs in with", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    // Fullwidth letters are mapped to the usual ones (PRECIS width mapping): "\uFF29\uFF38ray" is "IXray".
    const record = await createAccount(
      store,
      { user: "\uFF29\uFF38ray", password: "correct horse battery" },
      {
        ...SETTINGS,
        now: 777,
      },
    );
    assert.equal(record.name, "IXray");
    assert.equal(record.nameKey, "ixray");
    assert.equal(record.createdAt, 777);
    assert.deepEqual(await store.findUser("ixray"), record);
    const verifier = parseVerifier(record.verifier);
    assert.equal(verifier.iterations, 4096);
    assert.equal(verifier.salt.length, 16);
    await scramLogin(record.verifier, "ixray", "correct horse battery");
    await rejectsWith(scramLogin(record.verifier, "ixray", "correct horse batterY"), "AUTH_FAILED");
  } finally {
    store.close();
  }
});

Deno.test("createAccount derives the verifier from the SASLprepped password", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const record = await createAccount(
      store,
      { user: "alice", password: "\uFB01nd the mossy stones" },
      SETTINGS,
    );
    await scramLogin(record.verifier, "alice", "find the mossy stones");
    await scramLogin(record.verifier, "alice", "\uFB01nd the mossy stones");
  } finally {
    store.close();
  }
});

Deno.test("createAccount uses the current time by default", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const before = Date.now();
    const record = await createAccount(store, { user: "bob", password: "quiet-river-stones-9" }, SETTINGS);
    assert.ok(record.createdAt >= before && record.createdAt <= Date.now());
  } finally {
    store.close();
  }
});

Deno.test("createAccount refuses an existing name in another case with USER_EXISTS", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const first = await createAccount(store, { user: "alice", password: "quiet-river-stones-9" }, SETTINGS);
    await rejectsWith(
      createAccount(store, { user: "ALICE", password: "other-fine-passphrase" }, SETTINGS),
      "USER_EXISTS",
    );
    assert.equal(await store.countUsers(), 1);
    assert.equal((await store.findUser("alice"))?.verifier, first.verifier, "the first account is untouched");
  } finally {
    store.close();
  }
});

Deno.test("createAccount refuses bad names and passwords and stores nothing", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const refused: [{ user: string; password: string }, ErrorCode, string, number?][] = [
      [{ user: "a:b", password: "quiet-river-stones-9" }, "INVALID_USERNAME", "colon"],
      [{ user: "alice", password: "short" }, "PASSWORD_POLICY", "too_short"],
      [{ user: "alice", password: "short-but-ok" }, "PASSWORD_POLICY", "too_short", 20],
      // The name check uses the prepared name: "\uFF29\uFF38ray" is "IXray".
      [{ user: "\uFF29\uFF38ray", password: "my-ixray-password-1" }, "PASSWORD_POLICY", "contains_username"],
      // SASLprep would make "IXray" of the Roman numeral; PRECIS refuses compatibility characters.
      [{ user: "\u2168ray", password: "quiet-river-stones-9" }, "INVALID_USERNAME", "disallowed_character"],
      [{ user: "I\u2665NY", password: "quiet-river-stones-9" }, "INVALID_USERNAME", "disallowed_character"],
    ];
    for (const [account, code, reason, minPasswordLength = SETTINGS.minPasswordLength] of refused) {
      await rejectsWith(createAccount(store, account, { ...SETTINGS, minPasswordLength }), code, reason);
    }
    assert.equal(await store.countUsers(), 0);
  } finally {
    store.close();
  }
});

Deno.test("createLegacyAccount imports a password the policy refuses as weak, flagged, with the refusal", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const cases = [
      ["user10", "password10", "common"],
      ["bob", "short", "too_short"],
      ["dave", "dave-rocks-forever", "contains_username"],
      ["jan", "my-authchat-pass", "contains_service"],
      ["kay", "k".repeat(257), "too_long"],
    ] as const;
    for (const [user, password, reason] of cases) {
      const { record, weakness } = await createLegacyAccount(store, { user, password }, SETTINGS);
      assert.equal(record.mustChangePassword, true, user);
      assert.ok(weakness instanceof ProtocolError);
      assert.equal(weakness.code, "PASSWORD_POLICY");
      assert.equal(weakness.details.reason, reason);
      await scramLogin(record.verifier, user, password);
    }
    const strong = await createLegacyAccount(
      store,
      { user: "erin", password: "quiet-river-stones-9" },
      SETTINGS,
    );
    assert.equal(strong.weakness, null);
    assert.equal(strong.record.mustChangePassword, false, "a password the policy accepts is not flagged");
    assert.equal((await store.findUser("erin"))?.mustChangePassword, false);
  } finally {
    store.close();
  }
});

Deno.test("createLegacyAccount refuses an empty password, one SASLprep refuses, bad and taken names", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await createLegacyAccount(store, { user: "frank", password: "frank1" }, SETTINGS);
    const refused: [{ user: string; password: string }, ErrorCode, string?][] = [
      [{ user: "gus", password: "" }, "PASSWORD_POLICY"],
      // U+00AD is mapped to nothing: nothing is left to prove.
      [{ user: "hal", password: "\u00AD\u00AD" }, "PASSWORD_POLICY", "too_short"],
      [{ user: "ivy", password: "bell\u0007ringer-long" }, "PASSWORD_POLICY", "prohibited_character"],
      [{ user: "a b", password: "x" }, "INVALID_USERNAME"],
      [{ user: "FRANK", password: "x" }, "USER_EXISTS"],
    ];
    for (const [account, code, reason] of refused) {
      await rejectsWith(createLegacyAccount(store, account, SETTINGS), code, reason);
    }
    assert.equal(await store.countUsers(), 1);
  } finally {
    store.close();
  }
});
