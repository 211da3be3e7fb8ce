import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { migrate, MIGRATIONS, SCHEMA_VERSION } from "../../lib/store/migrations.ts";

function userVersion(db: DatabaseSync): number {
  return Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
}

Deno.test("migrate applies every step once and then nothing", () => {
  const db = new DatabaseSync(":memory:");
  try {
    assert.deepEqual(migrate(db), MIGRATIONS.map((m) => m.version));
    assert.equal(userVersion(db), SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 1);
    assert.deepEqual(migrate(db), []);
    const secrets = db.prepare("SELECT value FROM meta WHERE key = 'mock_secret'").all() as {
      value: Uint8Array;
    }[];
    assert.equal(secrets.length, 1);
    assert.equal(secrets[0]!.value.length, 32);
  } finally {
    db.close();
  }
});

Deno.test("migrate refuses a newer schema with a RangeError and leaves no open transaction", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("PRAGMA user_version = 99");
    assert.throws(() => migrate(db), {
      name: "RangeError",
      message: "Database schema is too new: version 99, this authchat knows up to 1",
    });
    assert.equal(db.isTransaction, false);
    assert.equal(userVersion(db), 99);
  } finally {
    db.close();
  }
});

Deno.test("migrate's users table refuses duplicate keys and non-SCRAM verifiers", () => {
  const db = new DatabaseSync(":memory:");
  try {
    migrate(db);
    const insert = db.prepare("INSERT INTO users (name, name_key, verifier, created_at) VALUES (?, ?, ?, ?)");
    insert.run("a", "a", "SCRAM-SHA-256$x", 1);
    assert.throws(() => insert.run("A", "a", "SCRAM-SHA-256$x", 1));
    assert.throws(() => insert.run("b", "b", "md5abc", 1));
    assert.throws(() => insert.run("c", "c", "scram-sha-256$x", 1), "the prefix check is case-sensitive");
  } finally {
    db.close();
  }
});
