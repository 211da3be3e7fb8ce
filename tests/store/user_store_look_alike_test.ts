import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { addAccount } from "../../lib/store/create_account.ts";
import { MIGRATIONS } from "../../lib/store/migrations.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { NewUser } from "../../lib/store/user_store.ts";
import { ALICE_LOOK_ALIKES } from "../auth/_look_alikes.ts";
import { withTempDir } from "./_helpers.ts";

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

Deno.test("SqliteUserStore.createUser refuses each look-alike of an existing name: USER_EXISTS, confusable", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await store.createUser(newUser("alice"));
    for (const [name] of ALICE_LOOK_ALIKES) {
      await assert.rejects(store.createUser(newUser(name)), isLookAlikeRefusal(name));
    }
    await assert.rejects(store.createUser(newUser("aIice")), isLookAlikeRefusal("aIice"));
    assert.equal(await store.countUsers(), 1);
    // After a refusal the connection is usable, outside any transaction.
    assert.equal((await store.createUser(newUser("bob"))).name, "bob");
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.createUser refuses the same name in another case as taken, without a reason", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await store.createUser(newUser("\u0430lice"));
    await assert.rejects(store.createUser(newUser("\u0410LICE")), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, "USER_EXISTS");
      assert.equal(err.details.reason, undefined);
      assert.equal(err.message, "User already exists: \u0410LICE");
      return true;
    });
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.hasLookAlike tells whether an account's name looks like a name", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    assert.equal(await store.hasLookAlike("alice", "alice"), false);
    await store.createUser(newUser("alice"));
    assert.equal(await store.hasLookAlike("alice", "alice"), true);
    assert.equal(await store.hasLookAlike("\u0430lice", "\u0430lice"), true);
    assert.equal(await store.hasLookAlike("aIice", "aiice"), true);
    assert.equal(await store.hasLookAlike("alicia", "alicia"), false);
  } finally {
    store.close();
  }
});

Deno.test("Look-alike registrations at once: one account is created, the others refused", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
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
  } finally {
    store.close();
  }
});

Deno.test("Look-alike registrations at once through two stores on one file: one account is created", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    const other = SqliteUserStore.open(file);
    try {
      const results = await Promise.allSettled([
        addAccount(store, { user: "alice", verifier: VERIFIER }),
        addAccount(other, { user: "\u0430lice", verifier: VERIFIER }),
        addAccount(store, { user: "a\u0142ice", verifier: VERIFIER }),
        addAccount(other, { user: "AL\u0130CE", verifier: VERIFIER }),
      ]);
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      assert.equal(await other.countUsers(), 1);
    } finally {
      store.close();
      other.close();
    }
  });
});

Deno.test("Accounts made before the look-alike rule keep working, and hold their names against new ones", async () => {
  await withTempDir(async (dir, file) => {
    // A version 3 database, as the code before this rule left it: look-alikes, and a name PRECIS refuses.
    await Deno.mkdir(`${dir}/data`);
    const db = new DatabaseSync(file);
    db.exec("BEGIN");
    for (const m of MIGRATIONS.filter((m) => m.version <= 3)) m.apply(db);
    const insert = db.prepare("INSERT INTO users (name, name_key, verifier, created_at) VALUES (?, ?, ?, ?)");
    for (const name of ["alice", "\u0430lice", "I\u2665NY"]) {
      insert.run(name, prepareUsername(name).key, VERIFIER, 1);
    }
    db.exec("PRAGMA user_version = 3; COMMIT");
    db.close();
    const store = SqliteUserStore.open(file);
    try {
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
    } finally {
      store.close();
    }
  });
});
