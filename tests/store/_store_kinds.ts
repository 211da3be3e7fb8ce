/**
 * The implementations the {@linkcode UserStore} contract suite runs against: SQLite always, PostgreSQL
 * when the tests have one (tests/_cluster_services.ts). A contract test is written once with
 * {@linkcode contractTest} and registered once per implementation, named after it, so the two cannot drift.
 *
 * @module
 */

import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import postgres from "postgres";
import { MIGRATIONS } from "../../lib/store/migrations.ts";
import { PostgresUserStore } from "../../lib/store/postgres_user_store.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { UserStore } from "../../lib/store/user_store.ts";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";
import type { ClusterService } from "../_cluster_services.ts";

/** A store of any implementation, with the write-behind flush both have. */
export type TestStore = UserStore & {
  /** Write the recorded login times now. */
  flushLogins(): void | Promise<void>;
};

/** A row of an account as an older version of the code wrote it (see {@linkcode TestDatabase.legacy}). */
export interface LegacyRow {
  name: string;
  name_key: string;
  verifier: string;
  created_at: number;
  identity_key?: Uint8Array;
  key_backup?: string;
}

/** An empty database of one implementation, for one test; every store opened on it is closed with it. */
export interface TestDatabase extends AsyncDisposable {
  /** Open a store on this database (as one more server process or node would). */
  open(): Promise<TestStore>;
  /**
   * Make this database what the code of schema `version` left, holding `rows`: migrated only that far,
   * rows inserted with that version's columns. Call it before any {@linkcode open}.
   */
  legacy(version: number, rows: LegacyRow[]): Promise<void>;
}

/** One implementation of the store. */
export interface StoreKind {
  /** The class, which names its tests. */
  name: "SqliteUserStore" | "PostgresUserStore";
  /** Services it needs. */
  needs: readonly ClusterService[];
  /** A fresh, empty database. */
  database(): Promise<TestDatabase>;
}

/** Close every store of a database (closing twice is allowed), then run `drop`. */
function tracked(
  open: () => Promise<TestStore>,
  legacy: TestDatabase["legacy"],
  drop: () => Promise<void>,
): TestDatabase {
  const stores: TestStore[] = [];
  return {
    async open() {
      const store = await open();
      stores.push(store);
      return store;
    },
    legacy,
    async [Symbol.asyncDispose]() {
      try {
        for (const store of stores) await store.close();
      } finally {
        await drop();
      }
    },
  };
}

const SQLITE: StoreKind = {
  name: "SqliteUserStore",
  needs: [],
  async database() {
    const dir = await Deno.makeTempDir({ prefix: "authchat-store-" });
    const file = join(dir, "data", "authchat.db");
    return tracked(
      () => Promise.resolve(SqliteUserStore.open(file)),
      async (version, rows) => {
        await Deno.mkdir(join(dir, "data"), { recursive: true });
        const db = new DatabaseSync(file);
        try {
          db.exec("BEGIN");
          for (const m of MIGRATIONS.filter((m) => m.version <= version)) m.apply(db);
          for (const row of rows) {
            const columns = Object.keys(row);
            db.prepare(
              `INSERT INTO users (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
            )
              .run(...Object.values(row));
          }
          db.exec(`PRAGMA user_version = ${version}; COMMIT`);
        } finally {
          db.close();
        }
      },
      () => Deno.remove(dir, { recursive: true }),
    );
  },
};

const POSTGRES: StoreKind = {
  name: "PostgresUserStore",
  needs: ["postgres"],
  async database() {
    const db = await freshPostgresDatabase();
    return tracked(
      () => PostgresUserStore.open(db.url, { poolSize: 4 }),
      async (version, rows) => {
        const old = await PostgresUserStore.open(db.url, { poolSize: 1, migrateUpTo: version });
        await old.close();
        const sql = postgres(db.url, { max: 1, onnotice: () => {} });
        try {
          for (const row of rows) {
            await sql`INSERT INTO users ${
              sql(row as unknown as Record<string, postgres.SerializableParameter>)
            }`;
          }
        } finally {
          await sql.end({ timeout: 5 });
        }
      },
      () => db[Symbol.asyncDispose](),
    );
  },
};

/** Every implementation, SQLite first. */
export const STORE_KINDS: readonly StoreKind[] = [SQLITE, POSTGRES];

/**
 * Register one contract test per implementation, named `"<class> <behaviour>"` (`"<class>.<method> …"` for
 * a behaviour that starts with a dot), each on a fresh database.
 *
 * @param behaviour What the test shows, after the class name.
 * @param fn The test, given the fresh database (open stores on it; they are closed after).
 */
export function contractTest(behaviour: string, fn: (db: TestDatabase) => Promise<void>): void {
  for (const kind of STORE_KINDS) {
    const name = behaviour.startsWith(".") ? `${kind.name}${behaviour}` : `${kind.name} ${behaviour}`;
    clusterTest(name, kind.needs, async () => {
      await using db = await kind.database();
      await fn(db);
    });
  }
}
