import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkDatabaseSetting,
  isPostgresUrl,
  postgresLocation,
  redactDatabaseUrl,
} from "../../lib/store/database_location.ts";

Deno.test("isPostgresUrl tells a PostgreSQL URL from a file path", () => {
  for (const url of ["postgres://a@h/d", "postgresql://a@h", "POSTGRES://a@h/d"]) {
    assert.ok(isPostgresUrl(url), url);
  }
  for (const path of ["data/authchat.db", ":memory:", "/srv/postgres://x", "postgres:/a", "./postgres.db"]) {
    assert.ok(!isPostgresUrl(path), path);
  }
});

Deno.test("checkDatabaseSetting accepts paths and PostgreSQL URLs naming a host and a role", () => {
  for (
    const ok of ["data/authchat.db", ":memory:", "postgres://app@db/chat", "postgresql://app:pw@[::1]:5433/x"]
  ) {
    assert.equal(checkDatabaseSetting(ok), undefined, ok);
  }
  assert.match(checkDatabaseSetting("sqlite://x/y")!, /scheme sqlite/);
  assert.match(checkDatabaseSetting("postgres://db/chat")!, /no role/);
  assert.match(checkDatabaseSetting("postgres://app@h/d?host=/tmp")!, /host parameter/);
});

Deno.test("postgresLocation decodes the role and database and defaults the port and database", () => {
  assert.deepEqual(postgresLocation("postgres://my%20app:p%40ss@db.example/my%2Fdb"), {
    host: "db.example",
    port: 5432,
    user: "my app",
    database: "my/db",
  });
  assert.deepEqual(postgresLocation("postgresql://app@10.0.0.5:6000"), {
    host: "10.0.0.5",
    port: 6000,
    user: "app",
    database: "app",
  });
});

Deno.test("redactDatabaseUrl hides the password in the user part and in a password parameter", () => {
  assert.equal(redactDatabaseUrl("postgres://app:s3cret@db:5432/chat"), "postgres://app:***@db:5432/chat");
  assert.equal(redactDatabaseUrl("postgres://app@db/chat"), "postgres://app@db/chat");
  assert.equal(
    redactDatabaseUrl("postgres://app@db/chat?sslmode=require&password=s3cret"),
    "postgres://app@db/chat?sslmode=require&password=***",
  );
  assert.equal(redactDatabaseUrl("data/authchat.db"), "data/authchat.db");
  assert.equal(
    redactDatabaseUrl("postgres://app:s3cret@[bad/chat"),
    "postgres://…",
    "unparseable: scheme only",
  );
});

Deno.test("redactDatabaseUrl never shows any password, however it is spelt", () => {
  fc.assert(
    fc.property(fc.string({ minLength: 4, maxLength: 24 }), (password) => {
      // A password that is part of what is shown anyway (`chat`, `5432`) proves nothing either way.
      fc.pre(!/[*%]/.test(password) && !"postgres://app:***@db.example:5432/chat".includes(password));
      const url = `postgres://app:${encodeURIComponent(password)}@db.example:5432/chat`;
      const shown = redactDatabaseUrl(url);
      return !shown.includes(password) && !shown.includes(encodeURIComponent(password));
    }),
  );
});
