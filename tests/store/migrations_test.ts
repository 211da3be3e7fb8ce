import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { nameSkeletons } from "../../lib/auth/confusable_skeleton.ts";
import { migrate, MIGRATIONS, SCHEMA_VERSION } from "../../lib/store/migrations.ts";

function userVersion(db: DatabaseSync): number {
  return Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
}

/** An in-memory database as this code's first `version` steps leave it (`prepare` runs before the commit). */
function databaseAt(version: number, prepare?: (db: DatabaseSync) => void): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  db.exec("BEGIN");
  for (const step of MIGRATIONS.slice(0, version)) step.apply(db);
  prepare?.(db);
  db.exec(`PRAGMA user_version = ${version}; COMMIT`);
  return db;
}

Deno.test("migrate applies every step once and then nothing", () => {
  const db = new DatabaseSync(":memory:");
  try {
    assert.deepEqual(migrate(db), MIGRATIONS.map((m) => m.version));
    assert.equal(userVersion(db), SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 4);
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
      message: "Database schema is too new: version 99, this authchat knows up to 4",
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

Deno.test("migrate brings a version 1 database to the current version and keeps its rows", () => {
  const db = databaseAt(1);
  try {
    db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, last_login_at) VALUES (?, ?, ?, ?, ?)",
    )
      .run("Alice", "alice", "SCRAM-SHA-256$x", 5, 6);
    const secret = db.prepare("SELECT value FROM meta WHERE key = 'mock_secret'").get();
    assert.deepEqual(migrate(db), [2, 3, 4]);
    assert.equal(userVersion(db), 4);
    assert.deepEqual({ ...db.prepare("SELECT * FROM users").get() }, {
      id: 1,
      name: "Alice",
      name_key: "alice",
      verifier: "SCRAM-SHA-256$x",
      created_at: 5,
      last_login_at: 6,
      identity_key: null,
      key_backup: null,
      must_change_password: 0,
      skeleton: "alice",
      shown_skeleton: "Alice",
    });
    assert.deepEqual(db.prepare("SELECT value FROM meta WHERE key = 'mock_secret'").get(), secret);
    assert.deepEqual(migrate(db), []);
  } finally {
    db.close();
  }
});

Deno.test("migrate's users table keeps an identity key and its backup together, the key 32 bytes", () => {
  const db = new DatabaseSync(":memory:");
  try {
    migrate(db);
    const insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup) VALUES (?, ?, ?, ?, ?, ?)",
    );
    const v = "SCRAM-SHA-256$x";
    insert.run("a", "a", v, 1, new Uint8Array(32), "{}");
    insert.run("b", "b", v, 1, null, null);
    assert.throws(() => insert.run("c", "c", v, 1, new Uint8Array(32), null), /CHECK constraint/);
    assert.throws(() => insert.run("d", "d", v, 1, null, "{}"), /CHECK constraint/);
    assert.throws(() => insert.run("e", "e", v, 1, new Uint8Array(31), "{}"), /CHECK constraint/);
    assert.throws(() => insert.run("f", "f", v, 1, new Uint8Array(33), "{}"), /CHECK constraint/);
    assert.throws(() => db.prepare("UPDATE users SET key_backup = NULL WHERE name_key = 'a'").run(), /CHECK/);
    assert.throws(() => db.prepare("UPDATE users SET key_backup = '{}' WHERE name_key = 'b'").run(), /CHECK/);
    assert.equal((db.prepare("SELECT count(*) AS n FROM users").get() as { n: number }).n, 2);
  } finally {
    db.close();
  }
});

Deno.test("migrate brings a version 2 database to version 3: rows kept, nobody flagged", () => {
  const db = databaseAt(2);
  try {
    const insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup) VALUES (?, ?, ?, ?, ?, ?)",
    );
    insert.run("Alice", "alice", "SCRAM-SHA-256$x", 5, new Uint8Array(32).fill(2), "{}");
    insert.run("bob", "bob", "SCRAM-SHA-256$y", 6, null, null);
    const before = db.prepare("SELECT * FROM users ORDER BY id").all().map((r) => ({ ...r }));
    assert.deepEqual(migrate(db), [3, 4]);
    assert.equal(userVersion(db), 4);
    const after = db.prepare(
      "SELECT id, name, name_key, verifier, created_at, last_login_at, identity_key, key_backup, " +
        "must_change_password FROM users ORDER BY id",
    ).all().map((r) => ({ ...r }));
    assert.deepEqual(after, before.map((r) => ({ ...r, must_change_password: 0 })));
    assert.deepEqual(migrate(db), [], "forward only, once");
  } finally {
    db.close();
  }
});

Deno.test("migrate's step 3 rolls back as a whole when it fails, leaving version 2", () => {
  // A column of that name already there (a hand-edited database) makes the step fail.
  const db = databaseAt(2, (db) => db.exec("ALTER TABLE users ADD COLUMN must_change_password TEXT"));
  try {
    assert.throws(() => migrate(db), /duplicate column/);
    assert.equal(userVersion(db), 2);
    assert.equal(db.isTransaction, false);
  } finally {
    db.close();
  }
});

Deno.test("migrate brings a version 3 database to version 4: every row gets its look-alike keys, rows kept", () => {
  // Names the old rules let in, some of which look alike or fail the PRECIS rules of new names: all kept.
  const names: [string, string][] = [
    ["alice", "alice"],
    ["\u0430lice", "\u0430lice"],
    ["ALİCE", "ali\u0307ce"],
    ["aIice", "aiice"],
    ["I\u2665NY", "i\u2665ny"],
    ["bob", "bob"],
  ];
  const db = databaseAt(3, (db) => {
    const insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, must_change_password) VALUES (?, ?, ?, ?, ?)",
    );
    names.forEach(([name, key], i) => insert.run(name, key, "SCRAM-SHA-256$x", i, i % 2));
  });
  try {
    const before = db.prepare("SELECT * FROM users ORDER BY id").all().map((r) => ({ ...r }));
    assert.deepEqual(migrate(db), [4]);
    assert.equal(userVersion(db), 4);
    const after = db.prepare("SELECT * FROM users ORDER BY id").all().map((r) => ({ ...r }));
    assert.deepEqual(
      after.map(({ skeleton, shown_skeleton, ...rest }) => {
        assert.equal(typeof skeleton, "string");
        assert.equal(typeof shown_skeleton, "string");
        return rest;
      }),
      before,
    );
    assert.deepEqual(after.map((r) => [r.skeleton, r.shown_skeleton]), [
      ["alice", "alice"],
      ["alice", "alice"],
      ["alice", "ALlCE"],
      ["aiice", "alice"],
      ["i\u2665ny", "l\u2665NY"],
      ["bob", "bob"],
    ]);
    const plans = db.prepare(
      "EXPLAIN QUERY PLAN SELECT 1 FROM users WHERE skeleton = ? OR shown_skeleton = ?",
    )
      .all("a", "b").map((r) => String((r as { detail: string }).detail)).join("\n");
    assert.match(plans, /users_skeleton/, plans);
    assert.match(plans, /users_shown_skeleton/, plans);
    assert.deepEqual(migrate(db), [], "forward only, once");
  } finally {
    db.close();
  }
});

Deno.test("migrate's step 4 gives every row its keys a page at a time, ids with gaps and odd names alike", () => {
  // More rows than a page, ids far apart (and one negative, as a hand-edited database may have), names
  // of any code points: lone surrogates, controls, marks alone, bidi overrides.
  const odd = ["\ud800x", "\u0007", "\u0301\u0301", "\u202eevil", "\u{1F600}"];
  const ids = [-5, ...Array.from({ length: 2500 }, (_, i) => 1 + i * 7), 2 ** 40];
  const db = databaseAt(3, (db) => {
    const insert = db.prepare(
      "INSERT INTO users (id, name, name_key, verifier, created_at) VALUES (?, ?, ?, ?, 0)",
    );
    ids.forEach((id, i) => {
      const name = i < odd.length ? odd[i]! : `User${i}`;
      insert.run(id, name, `${name.toLowerCase()}#${i}`, "SCRAM-SHA-256$x");
    });
  });
  try {
    assert.deepEqual(migrate(db), [4]);
    const missing = db.prepare("SELECT count(*) AS n FROM users WHERE skeleton = '' OR shown_skeleton = ''")
      .get() as { n: number };
    assert.equal(Number(missing.n), 0, "every row has its keys");
    const last = db.prepare("SELECT shown_skeleton FROM users WHERE id = ?").get(2 ** 40) as {
      shown_skeleton: string;
    };
    assert.equal(last.shown_skeleton, nameSkeletons(`User${ids.length - 1}`, "").shown);
  } finally {
    db.close();
  }
});

Deno.test("migrate's step 4 rolls back as a whole when it fails, leaving version 3 and no new column", () => {
  const db = databaseAt(3, (db) => {
    db.prepare("INSERT INTO users (name, name_key, verifier, created_at) VALUES (?, ?, ?, ?)")
      .run("alice", "alice", "SCRAM-SHA-256$x", 1);
    // An index of that name already there (a hand-edited database) makes the step's last statement fail.
    db.exec("CREATE INDEX users_shown_skeleton ON users (name)");
  });
  try {
    assert.throws(() => migrate(db), /already exists/);
    assert.equal(userVersion(db), 3);
    assert.equal(db.isTransaction, false);
    const columns = db.prepare("PRAGMA table_info(users)").all().map((c) => (c as { name: string }).name);
    assert.ok(!columns.includes("skeleton"), columns.join());
  } finally {
    db.close();
  }
});

Deno.test("migrate's users table refuses a must-change-password flag other than 0 or 1", () => {
  const db = new DatabaseSync(":memory:");
  try {
    for (const m of MIGRATIONS) m.apply(db);
    const insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, must_change_password) VALUES (?, ?, ?, ?, ?)",
    );
    insert.run("a", "a", "SCRAM-SHA-256$x", 1, 1);
    assert.throws(() => insert.run("b", "b", "SCRAM-SHA-256$x", 1, 2), /CHECK constraint/);
    assert.throws(() => insert.run("c", "c", "SCRAM-SHA-256$x", 1, null), /NOT NULL/);
  } finally {
    db.close();
  }
});
