/**
 * The embedded account store on `node:sqlite`: WAL journal, full sync (an
 * acknowledged write survives a crash), foreign keys on, busy timeout, and
 * forward migrations at open. Login times are the exception: they are written
 * behind, at most {@linkcode LOGIN_FLUSH_MS} later, many in one transaction —
 * a synchronous commit per login would cost more than the whole login.
 *
 * @module
 */

import { closeSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { nameSkeletons } from "../auth/confusable_skeleton.ts";
import { migrate } from "./migrations.ts";
import { nameLooksTaken, nameTaken } from "./name_taken.ts";
import { credentialsOf, userRecordOf } from "./_user_rows.ts";
import type { CredentialsRow, UserRow } from "./_user_rows.ts";
import type {
  AccountVerifier,
  Credentials,
  IdentityRecord,
  LoginRecord,
  NewUser,
  UserRecord,
  UserStore,
} from "./user_store.ts";

/** File name of the database inside the data directory. */
export const DATABASE_FILE = "authchat.db";

/** How long a write waits for a lock another process (such as `seed`) holds. */
const BUSY_TIMEOUT_MS = 5000;

export { LOGIN_FLUSH_MS } from "./_login_times.ts";
import { LoginTimes } from "./_login_times.ts";

function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { errcode?: number }).errcode === 2067;
}

/**
 * SQLite implementation of {@linkcode UserStore}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SqliteUserStore } from "./sqlite_user_store.ts";
 * const store = SqliteUserStore.open(":memory:");
 * assert(await store.countUsers() === 0);
 * store.close();
 * ```
 */
export class SqliteUserStore implements UserStore {
  #db: DatabaseSync;
  #find: StatementSync;
  #lookAlike: StatementSync;
  #credentials: StatementSync;
  #insert: StatementSync;
  #update: StatementSync;
  #updateWithBackup: StatementSync;
  #setIdentity: StatementSync;
  #delete: StatementSync;
  #lastLogin: StatementSync;
  #setLogin: StatementSync;
  #count: StatementSync;
  #verifiers: StatementSync;
  #iterations: StatementSync;
  #secret: Uint8Array<ArrayBuffer>;
  /**
   * Login times not yet written, by row id, with the verifier they were recorded under: a row id a deleted
   * account freed may be given to a new one, which must not inherit its predecessor's login time.
   */
  #logins = new LoginTimes(() => this.flushLogins());
  #ping: StatementSync;
  /** The database file and its identity when opened (`null` for `:memory:`), for {@linkcode SqliteUserStore.ping}. */
  #file: { path: string; dev: number; ino: number } | null;

  private constructor(db: DatabaseSync, file: { path: string; dev: number; ino: number } | null) {
    this.#db = db;
    this.#file = file;
    this.#ping = db.prepare("SELECT count(*) AS n FROM meta");
    this.#find = db.prepare("SELECT * FROM users WHERE name_key = ?");
    this.#lookAlike = db.prepare(
      "SELECT 1 AS found FROM users WHERE skeleton = ? OR shown_skeleton = ? LIMIT 1",
    );
    // One row whether or not the name has an account, of the same columns and types: the unknown name's
    // comes from the decoy given. A LEFT JOIN onto a one-row constant, so the engine does the same index
    // search either way and no branch of the caller's depends on the answer.
    this.#credentials = db.prepare(
      "SELECT u.id IS NOT NULL AS found, coalesce(u.id, 0) AS id, coalesce(u.name, q.k) AS name, " +
        "coalesce(u.verifier, q.decoy) AS verifier, coalesce(u.must_change_password, 0) AS must_change_password " +
        "FROM (SELECT ?1 AS k, ?2 AS decoy) AS q LEFT JOIN users AS u ON u.name_key = q.k",
    );
    this.#insert = db.prepare(
      "INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup, must_change_password, " +
        "skeleton, shown_skeleton) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
    );
    // Without a re-sealed backup only an account without an identity key may change its password: a key
    // registered during the exchange would otherwise stay sealed under the old password. A new password
    // was checked against the policy by the client, so it lifts the must-change flag in the same write.
    this.#update = db.prepare(
      "UPDATE users SET verifier = ?, must_change_password = 0 " +
        "WHERE id = ? AND verifier = ? AND identity_key IS NULL",
    );
    // A backup is only replaced where one exists: the CHECK keeps key and backup together.
    this.#updateWithBackup = db.prepare(
      "UPDATE users SET verifier = ?, must_change_password = 0, " +
        "key_backup = CASE WHEN identity_key IS NULL THEN NULL ELSE ? END WHERE id = ? AND verifier = ?",
    );
    this.#setIdentity = db.prepare(
      "UPDATE users SET identity_key = ?, key_backup = ? WHERE id = ? AND verifier = ? AND identity_key IS NULL",
    );
    this.#delete = db.prepare("DELETE FROM users WHERE id = ? AND verifier = ?");
    this.#lastLogin = db.prepare(
      "SELECT last_login_at, identity_key, key_backup FROM users WHERE id = ? AND verifier = ?",
    );
    // Never backwards: another process sharing the file may have written a later login first.
    this.#setLogin = db.prepare(
      "UPDATE users SET last_login_at = max(coalesce(last_login_at, 0), ?) WHERE id = ? AND verifier = ?",
    );
    this.#iterations = db.prepare(
      "SELECT CAST(substr(verifier, 15, instr(verifier, ':') - 15) AS INTEGER) AS i, count(*) AS n FROM users GROUP BY i",
    );
    this.#count = db.prepare("SELECT count(*) AS n FROM users");
    // The ids travel as one JSON array: one statement for any number of them.
    this.#verifiers = db.prepare(
      "SELECT id, name_key, verifier FROM users WHERE id IN (SELECT value FROM json_each(?))",
    );
    const secret = db.prepare("SELECT value FROM meta WHERE key = 'mock_secret'").get() as {
      value: Uint8Array<ArrayBuffer>;
    };
    this.#secret = new Uint8Array(secret.value);
  }

  /**
   * Open (creating or migrating) a database file.
   *
   * @param path File path, or `:memory:`.
   * @returns The store.
   * @throws {RangeError} When the file's schema is newer than this code.
   */
  static open(path: string): SqliteUserStore {
    if (path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Verifiers and the mock secret are not for other local users. SQLite gives the -wal and -shm
      // files the database file's mode, so creating it 0600 covers all three.
      closeSync(openSync(path, "a", 0o600));
    }
    const db = new DatabaseSync(path);
    try {
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec("PRAGMA foreign_keys = ON");
      migrate(db);
      const opened = path === ":memory:" ? null : statSync(path);
      return new SqliteUserStore(db, opened && { path, dev: opened.dev, ino: opened.ino });
    } catch (err) {
      db.close();
      throw err;
    }
  }

  findUser(nameKey: string): Promise<UserRecord | undefined> {
    const row = this.#find.get(nameKey) as UserRow | undefined;
    if (!row) return Promise.resolve(undefined);
    const record = userRecordOf(row);
    record.lastLoginAt = this.#logins.pending(record.id, record.verifier) ?? record.lastLoginAt;
    return Promise.resolve(record);
  }

  hasLookAlike(name: string, nameKey: string): Promise<boolean> {
    const { folded, shown } = nameSkeletons(name, nameKey);
    return Promise.resolve(this.#lookAlike.get(folded, shown) !== undefined);
  }

  findCredentials(nameKey: string, decoy: string): Promise<Credentials> {
    // No branch on the row: an account and an unknown name are converted alike.
    const row = this.#credentials.get(nameKey, decoy) as unknown as CredentialsRow;
    return Promise.resolve(credentialsOf(row));
  }

  createUser(user: NewUser): Promise<UserRecord> {
    const { folded, shown } = nameSkeletons(user.name, user.nameKey);
    try {
      // The look-alike check and the insert in one write transaction: of two look-alike names registered
      // at once (here or by another process), one is created and the other refused.
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        if (this.#find.get(user.nameKey)) throw nameTaken(user.name);
        if (this.#lookAlike.get(folded, shown)) throw nameLooksTaken(user.name);
        const row = this.#insert.get(
          user.name,
          user.nameKey,
          user.verifier,
          user.now,
          user.identity?.key ?? null,
          user.identity?.backup ?? null,
          user.mustChangePassword ? 1 : 0,
          folded,
          shown,
        ) as unknown as UserRow;
        this.#db.exec("COMMIT");
        return Promise.resolve(userRecordOf(row));
      } finally {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      }
    } catch (err) {
      return Promise.reject(isUniqueViolation(err) ? nameTaken(user.name) : err);
    }
  }

  updateVerifier(id: number, expected: string, verifier: string, keyBackup?: string): Promise<boolean> {
    const result = keyBackup === undefined
      ? this.#update.run(verifier, id, expected)
      : this.#updateWithBackup.run(verifier, keyBackup, id, expected);
    const changed = Number(result.changes) === 1;
    // Still the same account: a login time waiting to be written follows it to its new verifier.
    if (changed) this.#logins.moved(id, expected, verifier);
    return Promise.resolve(changed);
  }

  setIdentity(id: number, expected: string, identity: IdentityRecord): Promise<boolean> {
    const result = this.#setIdentity.run(identity.key, identity.backup, id, expected);
    return Promise.resolve(Number(result.changes) === 1);
  }

  deleteUser(id: number, expected: string): Promise<boolean> {
    const deleted = Number(this.#delete.run(id, expected).changes) === 1;
    if (deleted) this.#logins.deleted(id);
    return Promise.resolve(deleted);
  }

  recordLogin(id: number, expected: string, now: number): Promise<LoginRecord | undefined> {
    try {
      // One statement: the check of the verifier, the previous time and the identity key are read atomically.
      const row = this.#lastLogin.get(id, expected) as
        | { last_login_at: number | null; identity_key: Uint8Array | null; key_backup: string | null }
        | undefined;
      if (!row) return Promise.resolve(undefined);
      const previous = this.#logins.record(id, expected, now, row.last_login_at);
      const identity = row.identity_key !== null && row.key_backup !== null
        ? { key: new Uint8Array(row.identity_key), backup: row.key_backup }
        : null;
      return Promise.resolve({ previous, identity });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Write the recorded login times now, in one transaction. When the database is locked by another
   * process, they stay recorded and the next flush tries again: a flush never waits for the lock, as it
   * would hold up every session meanwhile.
   */
  flushLogins(): void {
    this.#flush(false);
  }

  #flush(waitForLock: boolean): void {
    this.#logins.cancel();
    if (this.#logins.size === 0 || !this.#db.isOpen) return;
    const logins = this.#logins.take();
    if (!waitForLock) this.#db.exec("PRAGMA busy_timeout = 0");
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      // Only onto the account the time was recorded for: a row deleted (here or by another process) and its
      // id given to a new account meanwhile is left alone.
      for (const [id, { at, verifier }] of logins) this.#setLogin.run(at, id, verifier);
      this.#db.exec("COMMIT");
      this.#logins.written(logins);
    } catch {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      this.#logins.schedule();
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  verifiersOf(ids: readonly number[]): Promise<Map<number, AccountVerifier>> {
    try {
      const rows = this.#verifiers.all(JSON.stringify(ids)) as {
        id: number;
        name_key: string;
        verifier: string;
      }[];
      return Promise.resolve(
        new Map(rows.map((r) => [Number(r.id), { nameKey: r.name_key, verifier: r.verifier }])),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  iterationCounts(): Promise<Map<number, number>> {
    const rows = this.#iterations.all() as { i: number; n: number }[];
    return Promise.resolve(new Map(rows.map((r) => [Number(r.i), Number(r.n)])));
  }

  mockSecret(): Promise<Uint8Array<ArrayBuffer>> {
    return Promise.resolve(this.#secret);
  }

  countUsers(): Promise<number> {
    return Promise.resolve(Number((this.#count.get() as { n: number }).n));
  }

  /**
   * Check that the store answers: it is open, a read of the database succeeds, and the file at its path
   * is still the one open. A file removed or replaced under a running server (`rm`, a backup restored with
   * `mv`) leaves it reading and writing the old one, which nothing will find after a restart.
   *
   * @throws {Error} Saying what is wrong.
   */
  ping(): Promise<void> {
    try {
      if (!this.#db.isOpen) throw new Error("Database closed");
      // The file first: a read of a replaced one may fail for reasons that only confuse (its -wal and -shm
      // files, found by name, are the new database's).
      const file = this.#file;
      if (file) {
        let now: { dev: number; ino: number } | null = null;
        try {
          now = statSync(file.path);
        } catch {
          // Gone: reported below.
        }
        if (now?.dev !== file.dev || now?.ino !== file.ino) {
          throw new Error(
            now
              ? `Database file replaced while open: ${file.path} (the server still uses the file it opened; ` +
                "restart it to use the new one)"
              : `Database file removed while open: ${file.path} (the server still uses the file it opened, ` +
                "which a restart will not find)",
          );
        }
      }
      this.#ping.get();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Run SQLite's integrity check.
   *
   * @returns `"ok"` or the problems found.
   */
  integrityCheck(): string {
    const rows = this.#db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join("\n");
  }

  close(): void {
    // The last chance to write them: worth waiting for a lock.
    this.#flush(true);
    this.#logins.cancel();
    if (this.#db.isOpen) this.#db.close();
  }
}
