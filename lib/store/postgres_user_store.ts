/**
 * The account store on PostgreSQL (`npm:postgres`), for several server nodes sharing one set of accounts:
 * the {@linkcode UserStore} contract of the SQLite store, on a pool of at most `poolSize` connections.
 *
 * - The schema and its versioned migrations are SQLite's, in PostgreSQL's dialect
 *   (lib/store/postgres_migrations.ts), applied at open under an advisory lock.
 * - Every write that follows a SCRAM proof names the verifier the proof was checked against and changes
 *   nothing when it has changed meanwhile, on any node (compare-and-swap in the statement's WHERE).
 * - A new name's look-alike check and insert are one transaction holding advisory locks on the name's two
 *   look-alike keys, so of two look-alike names registered at once on any nodes, one is created.
 * - The two reads of every login (`findCredentials`, and the check of the verifier in `recordLogin`) are
 *   gathered (_read_batches.ts): while one such statement is under way, the reads of both kinds asked
 *   meanwhile wait and go as one statement, each read still an index search of its own row. An idle database
 *   is asked at once; a busy one is woken once per batch rather than once per login.
 * - Login times are written behind, at most `LOGIN_FLUSH_MS` (_login_times.ts) later, many in one statement, each
 *   only onto the verifier it was recorded under. A time recorded on one node just before another node
 *   changes the password is dropped rather than written past the change.
 * - A lost connection fails the requests that needed it with `UNAVAILABLE` (a read is tried once more
 *   first, on a fresh connection); the next request connects again. Login times not yet written wait for
 *   the database to come back.
 * - Every request has a deadline ({@linkcode QUERY_TIMEOUT_MS}, connecting, waiting for a connection and
 *   waiting for its batch included): a database that stops answering without closing the connection
 *   (packets dropped) fails the request with `UNAVAILABLE` then, rather than when TCP gives up minutes
 *   later, and the pool is replaced. The database itself cancels a statement that runs longer (`statement_timeout`, and
 *   `idle_in_transaction_session_timeout` for a transaction left open), so a request that timed out does not
 *   commit much later. A write that fails this way may have committed: the caller cannot tell (see
 *   `PASSWD` and `DELETE` in session.ts).
 *
 * @module
 */

import postgres from "postgres";
import { nameSkeletons } from "../auth/confusable_skeleton.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { DEFAULT_POOL_SIZE, postgresLocation, redactDatabaseUrl } from "./database_location.ts";
import { databaseUnavailable, DatabaseUnavailableError } from "./database_unavailable.ts";
import { nameLooksTaken, nameTaken } from "./name_taken.ts";
import { credentialsOf, userRecordOf } from "./_user_rows.ts";
import type { CredentialsRow, UserRow } from "./_user_rows.ts";
import { migratePostgres } from "./postgres_migrations.ts";
import { installPostgresWriteGuard } from "./_postgres_write_guard.ts";
import { LoginTimes } from "./_login_times.ts";
import { ReadBatches } from "./_read_batches.ts";
import type {
  AccountVerifier,
  Credentials,
  IdentityRecord,
  LoginRecord,
  NewUser,
  UserRecord,
  UserStore,
} from "./user_store.ts";

/** Seconds a new connection may take before the request that needed it fails. */
export const CONNECT_TIMEOUT_S = 10;

/**
 * How long a request may wait for the database, ms, from its start (waiting for a connection of the pool,
 * connecting, and every statement) before it fails with `UNAVAILABLE`; also the longest a statement may
 * run in the database (`statement_timeout`).
 */
export const QUERY_TIMEOUT_MS = 10_000;

/**
 * The first key of the look-alike advisory locks (two-key form); the second is the hash of the look-alike
 * key. "ac" in ASCII.
 */
const LOOK_ALIKE_LOCK_CLASS = 0x6163;

/** Connection failures of the driver and the socket below it: the database is not answering. */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs that say the server is going, not ready or too slow: connection exceptions (class 08), an
 * administrator or crash shutdown and a server still starting (57P01–57P03), no connection slot left
 * (53300), and a statement cancelled by `statement_timeout` (57014).
 */
function isUnavailableState(state: string): boolean {
  // 57014: a statement cancelled, here only ever by statement_timeout (the database took too long).
  return state.startsWith("08") || ["57014", "57P01", "57P02", "57P03", "53300"].includes(state);
}

/** Whether an error of the driver means the database is not answering (rather than refusing a statement). */
function isConnectionFailure(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { code, name } = err as { code?: unknown; name?: unknown };
  if (typeof code !== "string") return false;
  if (name === "PostgresError") return isUnavailableState(code);
  return CONNECTION_CODES.has(code);
}

/** A name whose credentials a login asks for, with the decoy an unknown name gets. */
interface CredentialsQuery {
  key: string;
  decoy: string;
}

/** The account and verifier of a login whose proof was checked. */
interface LoginQuery {
  id: number;
  verifier: string;
}

/** What a login reads of its account. */
type LoginRow = Pick<UserRow, "last_login_at" | "identity_key" | "key_backup">;

/** One of the two reads of a login (see {@linkcode PostgresUserStore}'s `#loginReadsOf`). */
type LoginRead = { credentials: CredentialsQuery } | { check: LoginQuery };

/**
 * Its answer, tagged with its kind: the credentials of a name, or the row of a login whose account still has
 * the verifier its proof was checked against (`undefined`: it has not).
 */
type LoginAnswer = { credentials: Credentials } | { check: LoginRow | undefined };

/** A row of the login reads' statement: each read's own columns, the other kind's all null. */
type LoginReadRow = CredentialsRow & LoginRow & { i: number; checked: boolean };

/**
 * A batch's queries as the JSON text of one parameter, each numbered `i` by its place (text, then jsonb: a
 * parameter cast straight to jsonb is sent as JSON, and the text would arrive as one JSON string). A lone
 * surrogate is sent as U+FFFD, as a text parameter's UTF-8 has it: JSON would escape it, and jsonb refuse
 * the whole batch.
 */
function batchJson(queries: readonly object[]): string {
  return JSON.stringify(
    queries.map((query, i) => ({ i, ...query })),
    (_, value) => typeof value === "string" ? value.toWellFormed() : value,
  );
}

/** Options of a read-only request: tried once more after a connection failure. */
const READ = { retry: true };

/** A request that ran out of time (never leaves {@linkcode PostgresUserStore}'s `#run`). */
const TIMED_OUT = Symbol("timed out");

/** Options of {@linkcode PostgresUserStore.open}. */
export interface PostgresStoreOptions {
  /** Most connections open at once (default {@linkcode DEFAULT_POOL_SIZE}). */
  poolSize?: number;
  /** Migrate only this far (tests build older databases with it). */
  migrateUpTo?: number;
  /** Each request's deadline, ms (default {@linkcode QUERY_TIMEOUT_MS}; tests shorten it). */
  queryTimeoutMs?: number;
}

/**
 * PostgreSQL implementation of {@linkcode UserStore}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatabaseUnavailableError } from "./database_unavailable.ts";
 * import { PostgresUserStore } from "./postgres_user_store.ts";
 * // Nothing listens on port 1: the store does not open, and says so without the password.
 * await assert.rejects(
 *   PostgresUserStore.open("postgres://authchat:secret@127.0.0.1:1/authchat", { poolSize: 10 }),
 *   (err) => err instanceof DatabaseUnavailableError && err.message.includes("authchat:***@127.0.0.1:1"),
 * );
 * ```
 */
export class PostgresUserStore implements UserStore {
  #url: string;
  #poolSize: number;
  #queryTimeoutMs: number;
  #sql: postgres.Sql;
  /** The requests under way on each pool (on the current one, and on those set aside still finishing). */
  #running = new Map<postgres.Sql, Set<Promise<unknown>>>();
  /** Pools set aside after a connection failure, still finishing (awaited by {@linkcode close}). */
  #retiring = new Set<Promise<void>>();
  #secret: Uint8Array<ArrayBuffer>;
  /** Login times not yet written, by row id, with the verifier they were recorded under. */
  #logins = new LoginTimes(() => void this.flushLogins());
  #flushing: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  /** The two reads of every login, gathered into one statement while one is under way. */
  #loginReads: ReadBatches<LoginRead, LoginAnswer>;

  private constructor(
    url: string,
    pool: { size: number; queryTimeoutMs: number },
    sql: postgres.Sql,
    secret: Uint8Array<ArrayBuffer>,
  ) {
    this.#url = url;
    this.#poolSize = pool.size;
    this.#queryTimeoutMs = pool.queryTimeoutMs;
    this.#sql = sql;
    this.#secret = secret;
    const batches = {
      timeoutMs: pool.queryTimeoutMs,
      expired: databaseUnavailable,
      // The database not answering is every read's failure; a statement it refused may be one value's.
      shared: (err: unknown) => err instanceof ProtocolError && err.code === "UNAVAILABLE",
    };
    this.#loginReads = new ReadBatches((reads, since) => this.#loginReadsOf(reads, since), batches);
  }

  /**
   * A pool of at most `max` connections to `url`, connecting at its first statement, whose statements the
   * database cancels after `timeoutMs`.
   */
  static #pool(url: string, max: number, timeoutMs: number): postgres.Sql {
    // Host, port, role and database as this code reads the URL: the driver's own reading takes the
    // brackets of an IPv6 address for a host name. As one-element lists, which the driver takes as they
    // are (its types say string and number, but a string is split at every colon).
    const { host, port, user, database } = postgresLocation(url);
    return postgres(url, {
      host: [host] as unknown as string,
      port: [port] as unknown as number,
      username: user,
      database,
      max,
      connect_timeout: CONNECT_TIMEOUT_S,
      // Array types are never sent (lists travel as JSON): no catalogue query on every new connection.
      fetch_types: false,
      // "relation already exists, skipping" and the like are not for the server's output.
      onnotice: () => {},
      // Sent when each connection starts, so they cost no statement. Migrations lift them (they may take
      // long, and wait for another node's).
      connection: {
        application_name: "authchat",
        statement_timeout: timeoutMs,
        idle_in_transaction_session_timeout: timeoutMs,
      },
    });
  }

  /**
   * Connect, migrate (under the migration advisory lock) and read the server secret.
   *
   * @param url A `postgres://` or `postgresql://` URL naming host and role.
   * @param options Pool size.
   * @returns The store.
   * @throws {DatabaseUnavailableError} When the database cannot be reached or refuses the login (the
   *   message shows the URL without its password).
   * @throws {RangeError} When the database's schema is newer than this code.
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresUserStore> {
    installPostgresWriteGuard();
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
    const queryTimeoutMs = options.queryTimeoutMs ?? QUERY_TIMEOUT_MS;
    const sql = PostgresUserStore.#pool(url, poolSize, queryTimeoutMs);
    try {
      const [setting] = await sql<
        { encoding: string }[]
      >`SELECT current_setting('server_encoding') AS encoding`;
      const encoding = setting!.encoding;
      if (encoding !== "UTF8") {
        throw new DatabaseUnavailableError(
          redactDatabaseUrl(url),
          `its encoding is ${encoding}; authchat needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')`,
        );
      }
      await migratePostgres(sql, options.migrateUpTo === undefined ? {} : { upTo: options.migrateUpTo });
      const [row] = await sql<{ value: Uint8Array }[]>`SELECT value FROM meta WHERE key = 'mock_secret'`;
      return new PostgresUserStore(
        url,
        { size: poolSize, queryTimeoutMs },
        sql,
        new Uint8Array(row!.value),
      );
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw PostgresUserStore.#openError(url, err);
    }
  }

  /** What a failure at open becomes: the database's absence (exit 2) or the error as it is. */
  static #openError(url: string, err: unknown): unknown {
    if (err instanceof DatabaseUnavailableError || err instanceof RangeError) return err;
    const state = (err as { code?: unknown; name?: unknown })?.code;
    // Cannot connect, wrong password or role (28xxx), no such database (3D000): the setting is the cause.
    const refused = typeof state === "string" && (state.startsWith("28") || state === "3D000") &&
      (err as { name?: unknown }).name === "PostgresError";
    if (isConnectionFailure(err) || refused) {
      return new DatabaseUnavailableError(redactDatabaseUrl(url), (err as Error).message);
    }
    return err;
  }

  /**
   * Run a request's statements, turning a lost or silent database into `UNAVAILABLE`. After a connection
   * failure, or when the request's deadline passes, the pool is replaced by a fresh one: the driver may
   * leave a connection that failed mid-statement unusable, one that hangs holds the requests queued behind
   * it, and a fresh pool also connects again at once when the database is back. A read (`retry`) is tried
   * once more on the fresh pool after a connection failure, within the same deadline, so a connection the
   * database closed while idle costs no request; a write never is, as it may have committed before the
   * failure. `since`: when the request was asked for, if earlier than now (a batch of reads: when its newest
   * read was asked, each older one failing at its own deadline in _read_batches.ts); the deadline runs from
   * then.
   */
  async #run<T>(
    work: (sql: postgres.Sql) => Promise<T>,
    options: { retry?: boolean; since?: number } = {},
  ): Promise<T> {
    const deadline = (options.since ?? performance.now()) + this.#queryTimeoutMs;
    for (let attempt = 0;; attempt++) {
      // Its time spent waiting (a read gathered behind another statement): failed without sending it, so
      // the pool, which did nothing wrong, is not replaced.
      if (deadline <= performance.now()) throw databaseUnavailable();
      const sql = this.#sql;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const expired = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(TIMED_OUT), Math.max(0, deadline - performance.now()));
        });
        return await this.#track(sql, Promise.race([work(sql), expired]));
      } catch (err) {
        if (err !== TIMED_OUT && !isConnectionFailure(err)) throw err;
        this.#replacePool(sql);
        const again = err !== TIMED_OUT && options.retry && attempt === 0 && this.#closed === undefined;
        if (!again) throw databaseUnavailable();
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Count a request as under way on a pool until it settles (which its deadline bounds). */
  #track<T>(sql: postgres.Sql, request: Promise<T>): Promise<T> {
    let running = this.#running.get(sql);
    if (!running) this.#running.set(sql, running = new Set());
    running.add(request);
    const done = () => void running.delete(request);
    request.then(done, done);
    return request;
  }

  /**
   * Set a failed pool aside (once, however many of its requests failed) and start a fresh one. The
   * requests still under way on the old one may finish (each has its own deadline); then its connections
   * are dropped. Not on the driver's own timeout of `end`: it waits for a connection that failed mid-
   * statement for as long as it is given.
   */
  #replacePool(failed: postgres.Sql): void {
    if (this.#sql !== failed || this.#closed !== undefined) return;
    this.#sql = PostgresUserStore.#pool(this.#url, this.#poolSize, this.#queryTimeoutMs);
    const running = [...this.#running.get(failed) ?? []];
    this.#running.delete(failed);
    const retired = Promise.allSettled(running).then(() => failed.end({ timeout: 0 })).catch(() => {});
    this.#retiring.add(retired);
    void retired.finally(() => this.#retiring.delete(retired));
  }

  async findUser(nameKey: string): Promise<UserRecord | undefined> {
    const [row] = await this.#run(
      (sql) => sql<UserRow[]>`SELECT * FROM users WHERE name_key = ${nameKey}`,
      READ,
    );
    if (!row) return undefined;
    const record = userRecordOf(row);
    record.lastLoginAt = this.#logins.pending(record.id, record.verifier) ?? record.lastLoginAt;
    return record;
  }

  async hasLookAlike(name: string, nameKey: string): Promise<boolean> {
    const { folded, shown } = nameSkeletons(name, nameKey);
    const rows = await this.#run(
      (sql) => sql`SELECT 1 FROM users WHERE skeleton = ${folded} OR shown_skeleton = ${shown} LIMIT 1`,
      READ,
    );
    return rows.length > 0;
  }

  async findCredentials(nameKey: string, decoy: string): Promise<Credentials> {
    const answer = await this.#loginReads.read({ credentials: { key: nameKey, decoy } });
    if (!("credentials" in answer)) throw new TypeError("A credentials read was answered as a login's check");
    return answer.credentials;
  }

  /**
   * The two reads of a batch of logins, in one statement: one row per read, in the order asked.
   *
   * - The credentials of a name (`k`): one row whether or not it has an account, of the same columns and
   *   types; an unknown name's comes from the decoy given. Each name is an index search of its own (a LATERAL
   *   subquery with LIMIT is not merged into a join the planner could turn into a scan), the same search
   *   either way, and nothing here branches on the answer.
   * - The check of a login (`id`, `verifier`): the account's row only if it still has the verifier the proof
   *   was checked against (`checked`), and with it the previous login time and identity key, read
   *   atomically with that check (one row, one snapshot).
   *
   * A read's other columns are null: its own key is, for the other kind's index search, which finds nothing.
   */
  async #loginReadsOf(reads: readonly LoginRead[], since: number): Promise<LoginAnswer[]> {
    const queries = reads.map((read) =>
      "credentials" in read
        ? { k: read.credentials.key, decoy: read.credentials.decoy }
        : { id: read.check.id, verifier: read.check.verifier }
    );
    const rows = await this.#run((sql) =>
      sql<LoginReadRow[]>`
        SELECT q.i, c.id IS NOT NULL AS found, coalesce(c.id, 0) AS id, coalesce(c.name, q.k) AS name,
          coalesce(c.verifier, q.decoy) AS verifier, coalesce(c.must_change_password, false) AS must_change_password,
          l.id IS NOT NULL AS checked, l.last_login_at, l.identity_key, l.key_backup
        FROM jsonb_to_recordset(${batchJson(queries)}::text::jsonb)
          AS q(i integer, k text, decoy text, id bigint, verifier text)
        LEFT JOIN LATERAL (SELECT * FROM users WHERE name_key = q.k LIMIT 1) AS c ON true
        LEFT JOIN LATERAL (SELECT * FROM users WHERE id = q.id AND verifier = q.verifier LIMIT 1) AS l ON true
        ORDER BY q.i`, { ...READ, since });
    if (rows.length !== reads.length || rows.some((row, i) => row.i !== i)) {
      throw new RangeError(`The login reads answered rows ${rows.map((row) => row.i)} of ${reads.length}`);
    }
    return rows.map((row, i) => {
      if ("credentials" in reads[i]!) return { credentials: credentialsOf(row) };
      if (row.checked !== true) return { check: undefined };
      const { last_login_at, identity_key, key_backup } = row;
      return { check: { last_login_at, identity_key, key_backup } };
    });
  }

  async createUser(user: NewUser): Promise<UserRecord> {
    const { folded, shown } = nameSkeletons(user.name, user.nameKey);
    try {
      const row = await this.#run((sql) =>
        sql.begin(async (tx) => {
          // Whoever registers a name with either look-alike key waits here until this transaction ends, on
          // any node: the check below then sees the other's row. In a fixed order, so two never deadlock.
          await tx`
            SELECT pg_advisory_xact_lock(${LOOK_ALIKE_LOCK_CLASS}::integer, k)
            FROM (SELECT DISTINCT hashtext(s) AS k FROM (VALUES (${"f:" + folded}), (${"s:" + shown})) AS v(s)
                  ORDER BY k) AS keys
            ORDER BY k`;
          const [taken] = await tx`SELECT 1 FROM users WHERE name_key = ${user.nameKey}`;
          if (taken) throw nameTaken(user.name);
          const [alike] =
            await tx`SELECT 1 FROM users WHERE skeleton = ${folded} OR shown_skeleton = ${shown} LIMIT 1`;
          if (alike) throw nameLooksTaken(user.name);
          const [inserted] = await tx<UserRow[]>`
            INSERT INTO users (name, name_key, verifier, created_at, identity_key, key_backup, must_change_password,
              skeleton, shown_skeleton)
            VALUES (${user.name}, ${user.nameKey}, ${user.verifier}, ${user.now}, ${
            user.identity?.key ?? null
          },
              ${user.identity?.backup ?? null}, ${user.mustChangePassword ?? false}, ${folded}, ${shown})
            RETURNING *`;
          return inserted!;
        })
      );
      return userRecordOf(row);
    } catch (err) {
      // The same key inserted by a transaction that did not take the same locks (an older node).
      if ((err as { code?: unknown })?.code === "23505") throw nameTaken(user.name);
      throw err;
    }
  }

  async updateVerifier(id: number, expected: string, verifier: string, keyBackup?: string): Promise<boolean> {
    // Without a re-sealed backup only an account without an identity key may change its password (a key
    // registered during the exchange would stay sealed under the old one); with one, a backup is replaced
    // only where a key exists (the CHECK keeps the two together). Either way the must-change flag goes.
    const result = await this.#run((sql) =>
      keyBackup === undefined
        ? sql`
          UPDATE users SET verifier = ${verifier}, must_change_password = false
          WHERE id = ${id} AND verifier = ${expected} AND identity_key IS NULL`
        : sql`
          UPDATE users SET verifier = ${verifier}, must_change_password = false,
            key_backup = CASE WHEN identity_key IS NULL THEN NULL ELSE ${keyBackup}::text END
          WHERE id = ${id} AND verifier = ${expected}`
    );
    const changed = result.count === 1;
    // Still the same account: a login time waiting to be written follows it to its new verifier.
    if (changed) this.#logins.moved(id, expected, verifier);
    return changed;
  }

  async setIdentity(id: number, expected: string, identity: IdentityRecord): Promise<boolean> {
    const result = await this.#run((sql) =>
      sql`
        UPDATE users SET identity_key = ${identity.key}, key_backup = ${identity.backup}
        WHERE id = ${id} AND verifier = ${expected} AND identity_key IS NULL`
    );
    return result.count === 1;
  }

  async deleteUser(id: number, expected: string): Promise<boolean> {
    const result = await this.#run((sql) =>
      sql`DELETE FROM users WHERE id = ${id} AND verifier = ${expected}`
    );
    const deleted = result.count === 1;
    if (deleted) this.#logins.deleted(id);
    return deleted;
  }

  async recordLogin(id: number, expected: string, now: number): Promise<LoginRecord | undefined> {
    const answer = await this.#loginReads.read({ check: { id, verifier: expected } });
    if (!("check" in answer)) throw new TypeError("A login's check was answered as a credentials read");
    const row = answer.check;
    if (!row) return undefined;
    const previous = this.#logins.record(id, expected, now, row.last_login_at);
    const identity = row.identity_key !== null && row.key_backup !== null
      ? { key: new Uint8Array(row.identity_key), backup: row.key_backup }
      : null;
    return { previous, identity };
  }

  /**
   * Write the recorded login times now, in one statement, each only where the account still has the
   * verifier it was recorded under, and only forwards: a time recorded by one node never replaces a later
   * one another node wrote first. When the database does not answer they stay recorded, and a flush a
   * moment later tries again; this never rejects.
   *
   * @returns When the write is done or has failed.
   */
  flushLogins(): Promise<void> {
    this.#logins.cancel();
    // One flush at a time: a second waits for the first, then writes what is left.
    const next = (this.#flushing ?? Promise.resolve()).then(() => this.#flush());
    this.#flushing = next;
    void next.finally(() => {
      if (this.#flushing === next) this.#flushing = undefined;
    });
    return next;
  }

  async #flush(): Promise<void> {
    if (this.#logins.size === 0) return;
    const logins = this.#logins.take();
    const rows = logins.map(([id, { at, verifier }]) => ({ id, at, verifier }));
    try {
      // As text, then jsonb: a parameter cast straight to jsonb is sent as JSON, and the text would arrive as
      // one JSON string instead of the rows.
      await this.#run((sql) =>
        sql`
        UPDATE users AS u SET last_login_at = GREATEST(coalesce(u.last_login_at, 0), v.at)
        FROM jsonb_to_recordset(${
          JSON.stringify(rows)
        }::text::jsonb) AS v(id BIGINT, at BIGINT, verifier TEXT)
        WHERE u.id = v.id AND u.verifier = v.verifier`
      );
      this.#logins.written(logins);
    } catch {
      if (this.#closed === undefined) this.#logins.schedule();
    }
  }

  async verifiersOf(ids: readonly number[]): Promise<Map<number, AccountVerifier>> {
    if (ids.length === 0) return new Map();
    // The ids travel as one JSON array (text, then jsonb: see #flush): one statement for any number of them.
    const rows = await this.#run(
      (sql) =>
        sql<{ id: string; name_key: string; verifier: string }[]>`
        SELECT id, name_key, verifier FROM users
        WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::text::jsonb)::bigint)`,
      READ,
    );
    return new Map(rows.map((r) => [Number(r.id), { nameKey: r.name_key, verifier: r.verifier }]));
  }

  async iterationCounts(): Promise<Map<number, number>> {
    const rows = await this.#run(
      (sql) =>
        sql<{ i: string; n: string }[]>`
        SELECT split_part(split_part(verifier, '$', 2), ':', 1) AS i, count(*) AS n FROM users GROUP BY 1`,
      READ,
    );
    const counts = new Map<number, number>();
    for (const { i, n } of rows) {
      const iterations = /^\d+$/.test(i) ? Number(i) : 0;
      counts.set(iterations, (counts.get(iterations) ?? 0) + Number(n));
    }
    return counts;
  }

  mockSecret(): Promise<Uint8Array<ArrayBuffer>> {
    return Promise.resolve(this.#secret);
  }

  async countUsers(): Promise<number> {
    const [row] = await this.#run((sql) => sql<{ n: string }[]>`SELECT count(*) AS n FROM users`, READ);
    return Number(row!.n);
  }

  /**
   * One round trip to the database (`SELECT 1`), for the server's `/healthz`.
   *
   * @throws {ProtocolError} `UNAVAILABLE` when the database does not answer; an error when the store is closed.
   */
  async ping(): Promise<void> {
    await this.#run((sql) => sql`SELECT 1`, READ);
  }

  /**
   * Let the logins' reads asked before finish (those waiting for their batch too: each within its deadline),
   * write what is left of the login times (the last chance), then close the pool's connections.
   *
   * @returns When every connection is closed.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Asked before the close, as a request already sent to the pool is: answered, not refused by a pool
      // that has ended, and the login times they record are in the last flush.
      await this.#loginReads.settled();
      await this.flushLogins();
      this.#logins.cancel();
      await this.#sql.end({ timeout: 5 });
      await Promise.all(this.#retiring);
    })();
    return this.#closed;
  }
}
