import assert from "node:assert/strict";
import postgres from "postgres";
import { nameSkeletons } from "../../lib/auth/confusable_skeleton.ts";
import { MIGRATIONS, SCHEMA_VERSION } from "../../lib/store/migrations.ts";
import { migratePostgres } from "../../lib/store/postgres_migrations.ts";
import { PostgresUserStore } from "../../lib/store/postgres_user_store.ts";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";

/** Run `work` with a client of its own on a database, ended after. */
async function withClient<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

clusterTest(
  "migratePostgres applies every version of MIGRATIONS once, then nothing",
  ["postgres"],
  async () => {
    await using db = await freshPostgresDatabase();
    await withClient(db.url, async (sql) => {
      assert.deepEqual(await migratePostgres(sql), MIGRATIONS.map((m) => m.version));
      assert.deepEqual(await migratePostgres(sql), []);
      const [row] = await sql<{ version: number }[]>`SELECT version FROM authchat_schema`;
      assert.equal(row!.version, SCHEMA_VERSION);
      const secrets = await sql<{ value: Uint8Array }[]>`SELECT value FROM meta WHERE key = 'mock_secret'`;
      assert.equal(secrets.length, 1);
      assert.equal(secrets[0]!.value.length, 32);
    });
  },
);

clusterTest("migratePostgres run by several nodes at once on a fresh database applies each step once", [
  "postgres",
], async () => {
  await using db = await freshPostgresDatabase();
  const clients = Array.from({ length: 5 }, () => postgres(db.url, { max: 1, onnotice: () => {} }));
  try {
    const applied = await Promise.all(clients.map((sql) => migratePostgres(sql)));
    // Each step was applied by exactly one of them; the others found it done.
    assert.deepEqual(applied.flat().toSorted(), MIGRATIONS.map((m) => m.version), JSON.stringify(applied));
    const secrets = await clients[0]!`SELECT count(*)::int AS n FROM meta`;
    assert.equal(secrets[0]!.n, 1, "one mock secret");
  } finally {
    await Promise.all(clients.map((sql) => sql.end({ timeout: 5 })));
  }
});

clusterTest(
  "PostgresUserStore.open by several nodes at once on a fresh database: all share one schema and secret",
  ["postgres"],
  async () => {
    await using db = await freshPostgresDatabase();
    const stores = await Promise.all(
      Array.from({ length: 6 }, () => PostgresUserStore.open(db.url, { poolSize: 2 })),
    );
    try {
      const secrets = await Promise.all(stores.map((s) => s.mockSecret()));
      for (const secret of secrets) assert.deepEqual(secret, secrets[0]);
      await stores[0]!.createUser({
        name: "alice",
        nameKey: "alice",
        verifier: "SCRAM-SHA-256$4096:x",
        now: 1,
      });
      for (const store of stores) assert.equal(await store.countUsers(), 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  },
);

clusterTest(
  "migratePostgres brings a version 1 database to the current version, keys for every row, page by page",
  ["postgres"],
  async () => {
    await using db = await freshPostgresDatabase();
    await withClient(db.url, async (sql) => {
      assert.deepEqual(await migratePostgres(sql, { upTo: 1 }), [1]);
      // More rows than one page of migration 4, ids with gaps, and names whose keys differ from the name.
      await sql`
      INSERT INTO users (id, name, name_key, verifier, created_at, last_login_at)
      SELECT i * 3, 'User' || i, 'user' || i, 'SCRAM-SHA-256$x', i, NULL FROM generate_series(1, 2500) AS i`;
      await sql`INSERT INTO users (id, name, name_key, verifier, created_at) VALUES (9000000000, 'Ȧlice', 'ȧlice', 'SCRAM-SHA-256$x', 5)`;
      const secret = await sql`SELECT value FROM meta`;
      assert.deepEqual(await migratePostgres(sql), [2, 3, 4]);
      const [missing] =
        await sql`SELECT count(*)::int AS n FROM users WHERE skeleton = '' OR shown_skeleton = ''`;
      assert.equal(missing!.n, 0, "every row has its keys");
      const rows = await sql<
        { id: string; name: string; name_key: string; skeleton: string; shown_skeleton: string }[]
      >`
      SELECT id, name, name_key, skeleton, shown_skeleton FROM users WHERE id IN (3, 7500, 9000000000) ORDER BY id`;
      for (const row of rows) {
        const { folded, shown } = nameSkeletons(row.name, row.name_key);
        assert.deepEqual([row.skeleton, row.shown_skeleton], [folded, shown], row.name);
      }
      assert.equal(rows.length, 3);
      const [flags] = await sql`SELECT count(*)::int AS n FROM users WHERE must_change_password`;
      assert.equal(flags!.n, 0, "nobody flagged");
      assert.deepEqual(await sql`SELECT value FROM meta`, secret, "the secret kept");
    });
  },
);

clusterTest("The PostgreSQL schema keeps an identity key and its backup together, the key 32 bytes", [
  "postgres",
], async () => {
  await using db = await freshPostgresDatabase();
  await withClient(db.url, async (sql) => {
    await migratePostgres(sql);
    const insert = (name: string, key: Uint8Array | null, backup: string | null) =>
      sql`INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup)
          VALUES (${name}, ${name}, 'SCRAM-SHA-256$x', 1, ${key}, ${backup})`;
    await insert("a", new Uint8Array(32), "{}");
    await insert("b", null, null);
    await assert.rejects(insert("c", new Uint8Array(32), null), /check constraint/);
    await assert.rejects(insert("d", null, "{}"), /check constraint/);
    await assert.rejects(insert("e", new Uint8Array(31), "{}"), /check constraint/);
    await assert.rejects(
      insert("A", null, null).then(() => insert("A", null, null)),
      /unique/,
      "name_key unique",
    );
    await assert.rejects(
      sql`INSERT INTO users (name, name_key, verifier, created_at) VALUES ('f', 'f', 'md5abc', 1)`,
      /check constraint/,
    );
  });
});
