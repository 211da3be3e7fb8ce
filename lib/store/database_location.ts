/**
 * Where the accounts live, as the `database` setting says it: a file path (SQLite, the embedded default) or
 * a `postgres://` / `postgresql://` URL (PostgreSQL, for several nodes). Pure functions, no I/O: the
 * configuration checks a value with them, the launcher grants network access to the host they name, and
 * every message that shows a URL shows it through {@linkcode redactDatabaseUrl}.
 *
 * @module
 */

/** The URL schemes that select PostgreSQL. */
export const POSTGRES_SCHEMES: readonly string[] = ["postgres", "postgresql"];

/**
 * Connections to PostgreSQL a server opens at most, unless the `database_pool_size` setting says otherwise:
 * enough for the statements of a busy node to overlap, few enough that several nodes stay well under
 * PostgreSQL's default of 100 connections.
 */
export const DEFAULT_POOL_SIZE = 10;

/** PostgreSQL's port when a URL names none. */
export const POSTGRES_DEFAULT_PORT = 5432;

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/**
 * Whether a `database` value is a PostgreSQL URL (rather than a file path).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isPostgresUrl } from "./database_location.ts";
 * assert(isPostgresUrl("postgres://authchat@db.example/authchat"));
 * assert(!isPostgresUrl("data/authchat.db"));
 * ```
 *
 * @param database The setting.
 * @returns `true` for `postgres://…` and `postgresql://…` (any case of the scheme).
 */
export function isPostgresUrl(database: string): boolean {
  const scheme = SCHEME.exec(database)?.[1]?.toLowerCase();
  return scheme !== undefined && POSTGRES_SCHEMES.includes(scheme);
}

/** What a PostgreSQL URL names, once checked. */
export interface PostgresLocation {
  /** Host name or address (an IPv6 address without its brackets). */
  host: string;
  /** Port. */
  port: number;
  /** Role to log in as. */
  user: string;
  /** Database name (the role's name when the URL has no path, as PostgreSQL does). */
  database: string;
}

/**
 * Check a `database` value: a file path is taken as it is; a URL must be a PostgreSQL one naming a host and
 * a role (a single host: the launcher grants network access to exactly that one). The reason never repeats
 * the value, which may hold a password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDatabaseSetting } from "./database_location.ts";
 * assert(checkDatabaseSetting("data/authchat.db") === undefined);
 * assert(checkDatabaseSetting("postgres://db.example/authchat")?.includes("role"));
 * assert(checkDatabaseSetting("mysql://db.example/authchat")?.includes("postgres://"));
 * ```
 *
 * @param database The setting.
 * @returns Why it is refused, or `undefined` when it is fine.
 */
export function checkDatabaseSetting(database: string): string | undefined {
  const scheme = SCHEME.exec(database)?.[1];
  if (scheme === undefined) return undefined;
  if (!POSTGRES_SCHEMES.includes(scheme.toLowerCase())) {
    return `a URL with the scheme ${scheme}: expected a file path (SQLite) or a postgres:// or postgresql:// URL`;
  }
  let url: URL;
  try {
    url = new URL(database);
  } catch {
    return "not a valid URL: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters)";
  }
  if (url.hostname === "") {
    return "the URL names no host: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE";
  }
  if (url.hostname.includes(",")) return "the URL names several hosts: authchat connects to one";
  if (url.username === "") {
    return "the URL names no role: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE";
  }
  if (url.searchParams.has("host")) {
    return "the URL's host parameter is not supported: name the host before the path";
  }
  return undefined;
}

/**
 * What a checked PostgreSQL URL names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { postgresLocation } from "./database_location.ts";
 * assert.deepEqual(postgresLocation("postgres://app:s3cret@[::1]/chat"), {
 *   host: "::1",
 *   port: 5432,
 *   user: "app",
 *   database: "chat",
 * });
 * ```
 *
 * @param database A PostgreSQL URL that {@linkcode checkDatabaseSetting} accepts.
 * @returns Host, port, role and database.
 * @throws {TypeError} When it is not a valid URL.
 */
export function postgresLocation(database: string): PostgresLocation {
  const url = new URL(database);
  const user = decodeURIComponent(url.username);
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? POSTGRES_DEFAULT_PORT : Number(url.port),
    user,
    database: path === "" ? user : path,
  };
}

/**
 * A `database` value fit to show: a URL's password (in the user part or a `password` parameter) replaced
 * by `***`. A file path, or a text that is not a URL, is returned as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactDatabaseUrl } from "./database_location.ts";
 * assert(redactDatabaseUrl("postgres://app:s3cret@db:5432/chat") === "postgres://app:***@db:5432/chat");
 * assert(redactDatabaseUrl("data/authchat.db") === "data/authchat.db");
 * ```
 *
 * @param database The setting.
 * @returns The same, without a password.
 */
export function redactDatabaseUrl(database: string): string {
  if (!SCHEME.test(database)) return database;
  let url: URL;
  try {
    url = new URL(database);
  } catch {
    // Not parseable, so not knowingly free of a password: show only its scheme.
    return `${SCHEME.exec(database)![0]}…`;
  }
  if (url.password !== "") url.password = "***";
  for (const key of [...url.searchParams.keys()]) {
    if (key.toLowerCase() === "password") url.searchParams.set(key, "***");
  }
  return url.href.replace(":%2A%2A%2A@", ":***@").replaceAll("=%2A%2A%2A", "=***");
}
