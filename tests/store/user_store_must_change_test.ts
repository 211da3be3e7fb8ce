import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { prepareUsername } from "../../lib/auth/username.ts";
import { MIGRATIONS } from "../../lib/store/migrations.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { NewUser } from "../../lib/store/user_store.ts";
import { withTempDir } from "./_helpers.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";
const NEXT = "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD";

function newUser(name: string, mustChangePassword?: boolean): NewUser {
  return {
    name,
    nameKey: prepareUsername(name).key,
    verifier: VERIFIER,
    now: 1_700_000_000_000,
    ...(mustChangePassword === undefined ? {} : { mustChangePassword }),
  };
}

Deno.test("SqliteUserStore.createUser stores the must-change-password flag, off unless asked", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    assert.equal((await store.createUser(newUser("plain"))).mustChangePassword, false);
    assert.equal((await store.createUser(newUser("off", false))).mustChangePassword, false);
    const flagged = await store.createUser(newUser("user10", true));
    assert.equal(flagged.mustChangePassword, true);
    assert.equal((await store.findUser("user10"))?.mustChangePassword, true);
    assert.equal((await store.findUser("plain"))?.mustChangePassword, false);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.updateVerifier clears the flag in the same write, and only when it changes the verifier", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const { id } = await store.createUser(newUser("user10", true));
    assert.equal(await store.updateVerifier(id, NEXT, NEXT), false, "a stale verifier changes nothing");
    assert.equal((await store.findUser("user10"))?.mustChangePassword, true, "so the flag stays");
    assert.equal((await store.recordLogin(id, VERIFIER, 5))?.previous, null, "a login does not clear it");
    assert.equal((await store.findUser("user10"))?.mustChangePassword, true);
    assert.equal(await store.updateVerifier(id, VERIFIER, NEXT), true);
    const after = await store.findUser("user10");
    assert.equal(after?.verifier, NEXT);
    assert.equal(after?.mustChangePassword, false);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.updateVerifier with a backup clears the flag too, and keeps its identity rule", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const key = new Uint8Array(32).fill(3);
    const { id } = await store.createUser({ ...newUser("kim", true), identity: { key, backup: "old" } });
    assert.equal(await store.updateVerifier(id, VERIFIER, NEXT), false, "a key needs its re-sealed backup");
    assert.equal((await store.findUser("kim"))?.mustChangePassword, true, "a refused change keeps the flag");
    assert.equal(await store.updateVerifier(id, VERIFIER, NEXT, "new"), true);
    const after = await store.findUser("kim");
    assert.equal(after?.keyBackup, "new");
    assert.equal(after?.mustChangePassword, false);
  } finally {
    store.close();
  }
});

Deno.test("The schema refuses a must-change-password flag other than 0 or 1", () => {
  const db = new DatabaseSync(":memory:");
  try {
    for (const m of MIGRATIONS) m.apply(db);
    const insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, must_change_password) VALUES (?, ?, ?, ?, ?)",
    );
    insert.run("a", "a", VERIFIER, 1, 1);
    assert.throws(() => insert.run("b", "b", VERIFIER, 1, 2), /CHECK constraint/);
    assert.throws(() => insert.run("c", "c", VERIFIER, 1, null), /NOT NULL/);
  } finally {
    db.close();
  }
});

Deno.test("SqliteUserStore.open upgrades a version 2 database file: accounts kept, none flagged, flags work", async () => {
  await withTempDir(async (dir, file) => {
    await Deno.mkdir(`${dir}/data`);
    const db = new DatabaseSync(file);
    for (const m of MIGRATIONS.filter((m) => m.version <= 2)) m.apply(db);
    db.exec("PRAGMA user_version = 2");
    db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup) VALUES (?, ?, ?, ?, ?, ?)",
    ).run("Alice", "alice", VERIFIER, 7, new Uint8Array(32).fill(1), "backup");
    db.close();
    const store = SqliteUserStore.open(file);
    try {
      const alice = await store.findUser("alice");
      assert.equal(alice?.name, "Alice");
      assert.equal(alice?.keyBackup, "backup");
      assert.equal(alice?.mustChangePassword, false);
      assert.equal((await store.createUser(newUser("user10", true))).mustChangePassword, true);
    } finally {
      store.close();
    }
  });
});
