/**
 * The two ways a networked store says its database is not there: at start, an error that stops the
 * command (the operator fixes the setting or starts the database; exit status 2); while serving, the
 * protocol's `UNAVAILABLE` for the requests it fails (the client may try again; sessions stay up).
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";

/**
 * A database that cannot be reached, or refuses the login, when a store opens. Its message names the
 * database without its password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatabaseUnavailableError } from "./database_unavailable.ts";
 * const err = new DatabaseUnavailableError("postgres://app:***@db/chat", "connect ECONNREFUSED 10.0.0.5:5432");
 * assert(err.message === "Cannot reach the database postgres://app:***@db/chat: connect ECONNREFUSED 10.0.0.5:5432");
 * ```
 */
export class DatabaseUnavailableError extends Error {
  /** The database, without its password. */
  readonly location: string;

  /**
   * Make the error.
   *
   * @param location The database as shown (without its password).
   * @param reason What failed, as the driver or the server said it.
   */
  constructor(location: string, reason: string) {
    super(`Cannot reach the database ${location}: ${reason}`);
    this.name = "DatabaseUnavailableError";
    this.location = location;
  }
}

/**
 * The error a request gets when the database stopped answering while the server runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { databaseUnavailable } from "./database_unavailable.ts";
 * assert(databaseUnavailable().code === "UNAVAILABLE");
 * ```
 *
 * @returns `UNAVAILABLE`.
 */
export function databaseUnavailable(): ProtocolError {
  return new ProtocolError(
    "UNAVAILABLE",
    "Service unavailable: the database is not answering; try again later",
  );
}
