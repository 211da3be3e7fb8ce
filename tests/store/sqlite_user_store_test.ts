import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { NewUser } from "../../lib/store/user_store.ts";
import { withTempDir } from "./_helpers.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";

function newUser(name: string, now = 1_700_000_000_000, verifier = VERIFIER): NewUser {
  return { name, nameKey: prepareUsername(name).key, verifier, now };
}

/** Run `fn` with two stores on one database file, as two server processes would have; close both after. */
async function withTwoStores(
  fn: (store: SqliteUserStore, other: SqliteUserStore) => Promise<void>,
): Promise<void> {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    const other = SqliteUserStore.open(file);
    try {
      await fn(store, other);
    } finally {
      store.close();
      other.close();
    }
  });
}

/** A verifier of its own, as each registration's random salt gives. */
function saltedFor(name: string): string {
  return `SCRAM-SHA-256$4096:${btoa(`salt-of-${name}`)}$AAAA:BBBB`;
}

/** Read one PRAGMA from a database file with a connection of its own. */
function pragma(file: string, name: string): unknown {
  const db = new DatabaseSync(file);
  try {
    return (db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown>)[name];
  } finally {
    db.close();
  }
}

Deno.test("SqliteUserStore.open creates the file and its directory and migrates to user_version 4", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    try {
      assert.equal(await store.countUsers(), 0);
    } finally {
      store.close();
    }
    assert.equal(pragma(file, "user_version"), 4);
  });
});

Deno.test("SqliteUserStore.open does not migrate again on reopen", async () => {
  await withTempDir(async (_dir, file) => {
    const first = SqliteUserStore.open(file);
    const secret = (await first.mockSecret()).slice();
    await first.createUser(newUser("alice"));
    first.close();
    const again = SqliteUserStore.open(file);
    try {
      assert.deepEqual(await again.mockSecret(), secret, "the secret was not drawn again");
      assert.equal(await again.countUsers(), 1, "the tables were not recreated");
    } finally {
      again.close();
    }
    assert.equal(pragma(file, "user_version"), 4);
  });
});

Deno.test("SqliteUserStore.open refuses a database from a newer schema with a RangeError", async () => {
  await withTempDir(async (dir, file) => {
    await Deno.mkdir(`${dir}/data`);
    const db = new DatabaseSync(file);
    db.exec("PRAGMA user_version = 99");
    db.close();
    assert.throws(() => SqliteUserStore.open(file), { name: "RangeError", message: /too new/ });
    assert.equal(pragma(file, "user_version"), 99, "left untouched");
  });
});

Deno.test("SqliteUserStore creates and finds users by their lower-cased key", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const created = await store.createUser(newUser("Alice", 1234));
    assert.deepEqual(created, {
      id: created.id,
      name: "Alice",
      nameKey: "alice",
      verifier: VERIFIER,
      createdAt: 1234,
      lastLoginAt: null,
      identityKey: null,
      keyBackup: null,
      mustChangePassword: false,
    });
    assert.ok(Number.isInteger(created.id) && created.id > 0);
    assert.deepEqual(await store.findUser(prepareUsername("ALICE").key), created);
    assert.equal(await store.findUser("bob"), undefined);
    assert.equal(await store.countUsers(), 1);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore refuses the same name in another case with USER_EXISTS", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await store.createUser(newUser("alice"));
    await assert.rejects(store.createUser(newUser("ALICE")), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, "USER_EXISTS");
      return true;
    });
    assert.equal(await store.countUsers(), 1);
    assert.equal((await store.findUser("alice"))?.name, "alice");
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore stores names with SQL metacharacters verbatim", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const names = ["o'brien", "x');DROP/**/TABLE/**/users;--", "a%_b", 'q"uote\\', "semi;colon"];
    for (const name of names) await store.createUser(newUser(name));
    for (const name of names) {
      const found = await store.findUser(name.toLowerCase());
      assert.equal(found?.name, name);
    }
    assert.equal(await store.findUser("a%"), undefined, "no LIKE matching");
    assert.equal(await store.countUsers(), names.length);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore refuses a verifier that is not SCRAM-SHA-256", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await assert.rejects(store.createUser({ ...newUser("alice"), verifier: "plaintext-password" }));
    assert.equal(await store.countUsers(), 0);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.updateVerifier and deleteUser act only on the verifier the caller checked", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const { id, verifier: first } = await store.createUser(newUser("alice"));
    const next = "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD";
    assert.equal(await store.updateVerifier(id, first, next), true);
    assert.equal((await store.findUser("alice"))?.verifier, next);
    assert.equal(await store.updateVerifier(id, first, first), false, "a stale verifier changes nothing");
    assert.equal((await store.findUser("alice"))?.verifier, next);
    assert.equal(await store.updateVerifier(id + 1000, next, next), false);
    assert.equal(await store.deleteUser(id, first), false, "a stale verifier deletes nothing");
    assert.equal(await store.deleteUser(id, next), true);
    assert.equal(await store.findUser("alice"), undefined);
    assert.equal(await store.deleteUser(id, next), false);
    assert.equal(await store.updateVerifier(id, next, next), false);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.recordLogin returns null, then the previous time, and undefined for no account", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const { id, verifier } = await store.createUser(newUser("alice"));
    assert.equal((await store.recordLogin(id, verifier, 1000))?.previous, null);
    assert.equal((await store.recordLogin(id, verifier, 2000))?.previous, 1000);
    assert.equal((await store.recordLogin(id, verifier, 3000))?.previous, 2000);
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 3000);
    assert.equal(await store.recordLogin(id + 1000, verifier, 4000), undefined);
    assert.equal(await store.recordLogin(id, "SCRAM-SHA-256$other", 5000), undefined, "verifier changed");
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 3000);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore writes login times behind: others see them after a flush or close, none is lost", async () => {
  await withTwoStores(async (store, other) => {
    const { id, verifier } = await store.createUser(newUser("alice"));
    assert.equal((await store.recordLogin(id, verifier, 1000))?.previous, null);
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 1000, "this store sees it at once");
    assert.equal((await other.findUser("alice"))?.lastLoginAt, null, "not written yet");
    store.flushLogins();
    assert.equal((await other.findUser("alice"))?.lastLoginAt, 1000);
    assert.equal((await store.recordLogin(id, verifier, 2000))?.previous, 1000);
    assert.equal((await store.recordLogin(id, verifier, 3000))?.previous, 2000);
    store.close();
    assert.equal((await other.findUser("alice"))?.lastLoginAt, 3000, "close writes what is left");
  });
});

Deno.test("SqliteUserStore sees at once what another process wrote, though it keeps rows it read", async () => {
  await withTwoStores(async (store, other) => {
    const { id, verifier } = await store.createUser(newUser("alice"));
    assert.equal((await store.findUser("alice"))?.verifier, verifier, "read, and kept");
    // Another process changes the password: a proof checked against the old verifier must not commit.
    assert.equal(await other.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:new"), true);
    assert.equal((await store.findUser("alice"))?.verifier, "SCRAM-SHA-256$4096:new");
    assert.equal(
      await store.recordLogin(id, verifier, 1000),
      undefined,
      "the old verifier no longer logs in",
    );
    assert.equal(await other.deleteUser(id, "SCRAM-SHA-256$4096:new"), true);
    assert.equal(await store.findUser("alice"), undefined, "deleted elsewhere: gone here too");
    assert.equal(await store.recordLogin(id, "SCRAM-SHA-256$4096:new", 2000), undefined);
  });
});

Deno.test("SqliteUserStore forgets a kept row when it writes that row itself", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const { id, verifier } = await store.createUser(newUser("bob"));
    await store.findUser("bob");
    assert.equal(await store.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:changed"), true);
    assert.equal((await store.findUser("bob"))?.verifier, "SCRAM-SHA-256$4096:changed");
    assert.equal(await store.recordLogin(id, verifier, 1000), undefined);
    assert.equal((await store.recordLogin(id, "SCRAM-SHA-256$4096:changed", 1000))?.previous, null);
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore gives a new account no login time of a deleted one that had its row id", async () => {
  await withTwoStores(async (store, other) => {
    // Deleted here: its pending time goes with it.
    const victim = await store.createUser(newUser("victim", undefined, saltedFor("victim")));
    await store.recordLogin(victim.id, victim.verifier, 1000);
    assert.equal(await store.deleteUser(victim.id, victim.verifier), true);
    const heir = await store.createUser(newUser("heir", undefined, saltedFor("heir")));
    assert.equal(heir.id, victim.id, "SQLite gives the freed id to the next account");
    assert.equal((await store.findUser("heir"))?.lastLoginAt, null);
    assert.equal((await store.recordLogin(heir.id, heir.verifier, 2000))?.previous, null, "a first login");
    // Deleted by another process while the time waits: the flush leaves the new account alone.
    const gone = await store.createUser(newUser("gone", undefined, saltedFor("gone")));
    await store.recordLogin(gone.id, gone.verifier, 3000);
    assert.equal(await other.deleteUser(gone.id, gone.verifier), true);
    const next = await other.createUser(newUser("next", undefined, saltedFor("next")));
    assert.equal(next.id, gone.id);
    store.flushLogins();
    assert.equal((await other.findUser("next"))?.lastLoginAt, null);
    assert.equal((await store.findUser("next"))?.lastLoginAt, null);
  });
});

Deno.test("SqliteUserStore keeps a waiting login time across the account's own password change", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const { id, verifier } = await store.createUser(newUser("carol"));
    await store.recordLogin(id, verifier, 1000);
    assert.equal(await store.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:next"), true);
    assert.equal((await store.findUser("carol"))?.lastLoginAt, 1000);
    store.flushLogins();
    assert.equal((await store.findUser("carol"))?.lastLoginAt, 1000, "written under the new verifier");
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore keeps login times it could not write while another process held the lock", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    const locker = new DatabaseSync(file);
    try {
      const { id, verifier } = await store.createUser(newUser("alice"));
      await store.recordLogin(id, verifier, 1000);
      locker.exec("PRAGMA busy_timeout = 0");
      locker.exec("BEGIN IMMEDIATE");
      store.flushLogins();
      locker.exec("COMMIT");
      const row = locker.prepare("SELECT last_login_at FROM users WHERE id = ?").get(id) as {
        last_login_at: number | null;
      };
      assert.equal(row.last_login_at, null, "the flush could not write");
      store.flushLogins();
      const after = locker.prepare("SELECT last_login_at FROM users WHERE id = ?").get(id) as {
        last_login_at: number;
      };
      assert.equal(Number(after.last_login_at), 1000, "kept and written by the next flush");
    } finally {
      locker.close();
      store.close();
    }
  });
});

Deno.test("SqliteUserStore.mockSecret is 32 bytes, stable across reopen and distinct per database", async () => {
  await withTempDir(async (dir, file) => {
    const a = SqliteUserStore.open(file);
    const secret = (await a.mockSecret()).slice();
    a.close();
    assert.equal(secret.length, 32);
    const again = SqliteUserStore.open(file);
    const other = SqliteUserStore.open(`${dir}/other/authchat.db`);
    try {
      assert.deepEqual(await again.mockSecret(), secret);
      assert.notDeepEqual(await other.mockSecret(), secret);
    } finally {
      again.close();
      other.close();
    }
  });
});

Deno.test("SqliteUserStore uses WAL journalling and passes its integrity check", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    try {
      await store.createUser(newUser("alice"));
      assert.equal(pragma(file, "journal_mode"), "wal");
      assert.equal(store.integrityCheck(), "ok");
    } finally {
      store.close();
    }
  });
});

Deno.test("SqliteUserStore.close may be called twice and later calls fail", async () => {
  const store = SqliteUserStore.open(":memory:");
  store.close();
  store.close();
  await assert.rejects(async () => await store.countUsers());
});

Deno.test("SqliteUserStore.iterationCounts counts accounts per PBKDF2 iteration count", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    await store.createUser({ ...newUser("a"), verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" });
    await store.createUser({ ...newUser("b"), verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" });
    await store.createUser({ ...newUser("c"), verifier: "SCRAM-SHA-256$600000:c2FsdA==$AAAA:BBBB" });
    assert.deepEqual(await store.iterationCounts(), new Map([[4096, 2], [600000, 1]]));
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore creates the database file readable by its owner only", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    await store.createUser(newUser("alice"));
    store.close();
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  });
});

Deno.test("SqliteUserStore.findCredentials answers an unknown name with the decoy, in the same shape", async () => {
  const store = SqliteUserStore.open(":memory:");
  try {
    const decoy = "SCRAM-SHA-256$4096:ZGVjb3k=$EEEE:FFFF";
    const alice = await store.createUser(newUser("Alice", 1, saltedFor("alice")));
    await store.createUser({ ...newUser("carol"), mustChangePassword: true });
    const known = await store.findCredentials("alice", decoy);
    assert.deepEqual(known, {
      found: true,
      id: alice.id,
      name: "Alice",
      verifier: saltedFor("alice"),
      mustChangePassword: false,
    });
    assert.equal((await store.findCredentials("carol", decoy)).mustChangePassword, true);
    const unknown = await store.findCredentials("nobody", decoy);
    assert.deepEqual(unknown, {
      found: false,
      id: 0,
      name: "nobody",
      verifier: decoy,
      mustChangePassword: false,
    });
    const shape = (c: object) => Object.entries(c).map(([k, v]) => `${k}:${typeof v}`);
    assert.deepEqual(shape(unknown), shape(known), "the same fields of the same types, in the same order");
  } finally {
    store.close();
  }
});

Deno.test("SqliteUserStore.ping answers while the store is open and its file is the one at its path", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    try {
      await store.ping();
      await store.createUser(newUser("alice"));
      await store.ping();
    } finally {
      store.close();
    }
    await assert.rejects(store.ping(), /Database closed/);
  });
  const memory = SqliteUserStore.open(":memory:");
  await memory.ping();
  memory.close();
  await assert.rejects(memory.ping(), /Database closed/);
});

Deno.test("SqliteUserStore.ping fails once its file is removed or replaced under it", async () => {
  await withTempDir(async (dir, file) => {
    const store = SqliteUserStore.open(file);
    try {
      await Deno.rename(file, `${dir}/moved.db`);
      await assert.rejects(store.ping(), /^Error: Database file removed while open: .*authchat\.db/);
      // A restore: another database put at the path.
      SqliteUserStore.open(file).close();
      await assert.rejects(store.ping(), /^Error: Database file replaced while open: .*restart it/);
    } finally {
      store.close();
    }
  });
});
