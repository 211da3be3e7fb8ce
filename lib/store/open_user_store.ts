/**
 * Open the account store a `database` setting names: a file path (or `:memory:`) is a SQLite database, a
 * `postgres://` or `postgresql://` URL a PostgreSQL one. The server and `seed` open their store here and
 * nowhere else.
 *
 * @module
 */

import { DEFAULT_POOL_SIZE, isPostgresUrl } from "./database_location.ts";
import { PostgresUserStore } from "./postgres_user_store.ts";
import { SqliteUserStore } from "./sqlite_user_store.ts";

/** Options of {@linkcode openUserStore}. */
export interface OpenUserStoreOptions {
  /** Most connections to PostgreSQL at once (default {@linkcode DEFAULT_POOL_SIZE}; SQLite has one). */
  poolSize?: number;
}

/**
 * Open (creating or migrating) the store a `database` setting names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openUserStore } from "./open_user_store.ts";
 * const store = await openUserStore(":memory:");
 * assert(await store.countUsers() === 0);
 * await store.close();
 * ```
 *
 * @param database A file path, `:memory:`, or a PostgreSQL URL.
 * @param options Pool size (PostgreSQL).
 * @returns The store.
 * @throws {DatabaseUnavailableError} When a PostgreSQL database cannot be reached or refuses the login.
 * @throws {RangeError} When the database's schema is newer than this code.
 */
export async function openUserStore(
  database: string,
  options: OpenUserStoreOptions = {},
): Promise<SqliteUserStore | PostgresUserStore> {
  if (isPostgresUrl(database)) {
    return await PostgresUserStore.open(database, { poolSize: options.poolSize ?? DEFAULT_POOL_SIZE });
  }
  return SqliteUserStore.open(database);
}
