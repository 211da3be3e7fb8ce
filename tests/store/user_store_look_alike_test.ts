import assert from "node:assert/strict";
import { prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { addAccount } from "../../lib/store/create_account.ts";
import type { NewUser } from "../../lib/store/user_store.ts";
import { ALICE_LOOK_ALIKES } from "../auth/_look_alikes.ts";
import { contractTest } from "./_store_kinds.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";

function newUser(name: string): NewUser {
  return { name, nameKey: prepareUsername(name).key, verifier: VERIFIER, now: 1_700_000_000_000 };
}

function isLookAlikeRefusal(name: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, "USER_EXISTS");
    assert.equal(err.details.reason, "confusable");
    // The name asked for, never the account's it resembles.
    assert.equal(err.message, `User name looks like an existing account's: ${name}`);
    return true;
  };
}

contractTest(
  ".createUser refuses each look-alike of an existing name: USER_EXISTS, confusable",
  async (db) => {
    const store = await db.open();
    await store.createUser(newUser("alice"));
    for (const [name] of ALICE_LOOK_ALIKES) {
      await assert.rejects(store.createUser(newUser(name)), isLookAlikeRefusal(name));
    }
    await assert.rejects(store.createUser(newUser("aIice")), isLookAlikeRefusal("aIice"));
    assert.equal(await store.countUsers(), 1);
    // After a refusal the connection is usable, outside any transaction.
    assert.equal((await store.createUser(newUser("bob"))).name, "bob");
  },
);

contractTest(".createUser refuses the same name in another case as taken, without a reason", async (db) => {
  const store = await db.open();
  await store.createUser(newUser("\u0430lice"));
  await assert.rejects(store.createUser(newUser("\u0410LICE")), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "USER_EXISTS");
    assert.equal(err.details.reason, undefined);
    assert.equal(err.message, "User already exists: \u0410LICE");
    return true;
  });
});

contractTest(".hasLookAlike tells whether an account's name looks like a name", async (db) => {
  const store = await db.open();
  assert.equal(await store.hasLookAlike("alice", "alice"), false);
  await store.createUser(newUser("alice"));
  assert.equal(await store.hasLookAlike("alice", "alice"), true);
  assert.equal(await store.hasLookAlike("\u0430lice", "\u0430lice"), true);
  assert.equal(await store.hasLookAlike("aIice", "aiice"), true);
  assert.equal(await store.hasLookAlike("alicia", "alicia"), false);
});

contractTest("takes one of look-alike registrations at once, refusing the others", async (db) => {
  const store = await db.open();
  // Every addAccount passes its early check before any inserts: the store's transaction decides.
  const names = ["alice", ...ALICE_LOOK_ALIKES.map(([name]) => name)];
  const results = await Promise.allSettled(
    names.map((user) => addAccount(store, { user, verifier: VERIFIER })),
  );
  const created = results.filter((r) => r.status === "fulfilled");
  assert.equal(created.length, 1, JSON.stringify(results.map((r) => r.status)));
  for (const r of results) {
    if (r.status === "rejected") {
      assert.ok(r.reason instanceof ProtocolError);
      assert.equal(r.reason.code, "USER_EXISTS");
      assert.equal(r.reason.details.reason, "confusable");
    }
  }
  assert.equal(await store.countUsers(), 1);
});

contractTest(
  "takes one of look-alike registrations at once through two stores on one database",
  async (db) => {
    const store = await db.open();
    const other = await db.open();
    const results = await Promise.allSettled([
      addAccount(store, { user: "alice", verifier: VERIFIER }),
      addAccount(other, { user: "\u0430lice", verifier: VERIFIER }),
      addAccount(store, { user: "a\u0142ice", verifier: VERIFIER }),
      addAccount(other, { user: "AL\u0130CE", verifier: VERIFIER }),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal(await other.countUsers(), 1);
  },
);

contractTest(
  "keeps accounts made before the look-alike rule working, holding their names against new ones",
  async (db) => {
    // A version 3 database, as the code before this rule left it: look-alikes, and a name PRECIS refuses.
    await db.legacy(
      3,
      ["alice", "\u0430lice", "I\u2665NY"].map((name) => ({
        name,
        name_key: prepareUsername(name).key,
        verifier: VERIFIER,
        created_at: 1,
      })),
    );
    const store = await db.open();
    for (const typed of ["ALICE", "\u0410LICE", "i\u2665ny"]) {
      const found = await store.findUser(prepareUsername(typed).key);
      assert.ok(found, typed);
      assert.deepEqual(await store.recordLogin(found.id, VERIFIER, 5), { previous: null, identity: null });
      assert.equal(await store.updateVerifier(found.id, VERIFIER, `${VERIFIER}x`), true);
    }
    await assert.rejects(store.createUser(newUser("a\u0142ice")), isLookAlikeRefusal("a\u0142ice"));
    await assert.rejects(store.createUser(newUser("l\u2665NY")), isLookAlikeRefusal("l\u2665NY"));
    // Both old look-alikes gone, the name is free again.
    for (const key of ["alice", "\u0430lice"]) {
      const { id } = (await store.findUser(key))!;
      assert.equal(await store.deleteUser(id, `${VERIFIER}x`), true);
    }
    assert.equal((await store.createUser(newUser("a\u0142ice"))).name, "a\u0142ice");
  },
);
