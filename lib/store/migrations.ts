/**
 * Forward-only schema migrations, numbered by SQLite's `user_version`.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { nameSkeletons } from "../auth/confusable_skeleton.ts";

/** One schema step. */
export interface Migration {
  /** The `user_version` after this step. */
  version: number;
  /** What it changes. */
  description: string;
  /** Apply the step inside an open transaction. */
  apply(db: DatabaseSync): void;
}

/** Every migration, in order. Never edit a released one; append a new one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "accounts with PostgreSQL-format SCRAM verifiers, and server secrets",
    apply(db) {
      db.exec(`
        CREATE TABLE meta (
          key   TEXT PRIMARY KEY,
          value BLOB NOT NULL
        ) STRICT;
        CREATE TABLE users (
          id            INTEGER PRIMARY KEY,
          name          TEXT NOT NULL,
          name_key      TEXT NOT NULL UNIQUE,
          verifier      TEXT NOT NULL CHECK (substr(verifier, 1, 14) = 'SCRAM-SHA-256$'),
          created_at    INTEGER NOT NULL,
          last_login_at INTEGER
        ) STRICT;
      `);
      db.prepare("INSERT INTO meta (key, value) VALUES ('mock_secret', ?)")
        .run(crypto.getRandomValues(new Uint8Array(32)));
    },
  },
  {
    version: 2,
    description: "identity public keys and password-sealed private-key backups",
    apply(db) {
      db.exec(`
        ALTER TABLE users ADD COLUMN identity_key BLOB CHECK (identity_key IS NULL OR length(identity_key) = 32);
        ALTER TABLE users ADD COLUMN key_backup TEXT
          CHECK ((identity_key IS NULL) = (key_backup IS NULL));
      `);
    },
  },
  {
    version: 3,
    description: "accounts that must change their password (imported with one the policy refuses)",
    apply(db) {
      // Existing accounts chose their passwords under the policy (or were imported before this flag
      // existed): they are not flagged.
      db.exec(`
        ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
          CHECK (must_change_password IN (0, 1));
      `);
    },
  },
  {
    version: 4,
    description: "look-alike keys of names (UTS #39 skeletons), so a new name cannot imitate an existing one",
    apply(db) {
      // Not unique: accounts made before this step may already look alike, and keep working. Only new
      // names are held to it (SqliteUserStore.createUser checks and inserts in one transaction).
      db.exec(`
        ALTER TABLE users ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
        ALTER TABLE users ADD COLUMN shown_skeleton TEXT NOT NULL DEFAULT '';
      `);
      const update = db.prepare("UPDATE users SET skeleton = ?, shown_skeleton = ? WHERE id = ?");
      // A page at a time: a store of millions of accounts is not read into memory at once.
      const page = db.prepare("SELECT id, name, name_key FROM users WHERE id > ? ORDER BY id LIMIT 1000");
      for (let after = Number.MIN_SAFE_INTEGER;;) {
        const rows = page.all(after) as { id: number; name: string; name_key: string }[];
        if (rows.length === 0) break;
        for (const row of rows) {
          const { folded, shown } = nameSkeletons(row.name, row.name_key);
          update.run(folded, shown, row.id);
        }
        after = rows.at(-1)!.id;
      }
      db.exec(`
        CREATE INDEX users_skeleton ON users (skeleton);
        CREATE INDEX users_shown_skeleton ON users (shown_skeleton);
      `);
    },
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Bring a database up to {@linkcode SCHEMA_VERSION}, one transaction per step.
 *
 * @param db An open database.
 * @returns The versions applied.
 * @throws {RangeError} When the database is newer than this code.
 */
export function migrate(db: DatabaseSync): number[] {
  const version = () =>
    Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  const applied: number[] = [];
  for (const step of MIGRATIONS) {
    // Read the version inside the write lock: another process may have migrated meanwhile.
    db.exec("BEGIN IMMEDIATE");
    try {
      const current = version();
      if (current > SCHEMA_VERSION) {
        throw new RangeError(
          `Database schema is too new: version ${current}, this authchat knows up to ${SCHEMA_VERSION}`,
        );
      }
      if (current < step.version) {
        step.apply(db);
        db.exec(`PRAGMA user_version = ${step.version}`);
        applied.push(step.version);
      }
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  }
  return applied;
}
