import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { prepareUsername } from "../../lib/auth/username.ts";
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

Deno.test("SqliteUserStore creates the database file readable by its owner only", async () => {
  await withTempDir(async (_dir, file) => {
    const store = SqliteUserStore.open(file);
    await store.createUser(newUser("alice"));
    store.close();
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  });
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
