/**
 * The error a configuration value that cannot be used raises: one line that
 * names the key, environment variable, flag or file it came from.
 *
 * @module
 */

/**
 * A configuration value that cannot be used; `key` names where it came from. The CLI prints the message
 * as it is and exits with status 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "./config_error.ts";
 * const err = new ConfigError("tcp_port", "expected an integer");
 * assert(err.message === "Invalid configuration tcp_port: expected an integer");
 * ```
 */
export class ConfigError extends Error {
  /** The offending key, environment variable, flag or file. */
  readonly key: string;

  /**
   * Make a configuration error.
   *
   * @param key Where the bad value came from.
   * @param message What is wrong.
   */
  constructor(key: string, message: string) {
    super(`Invalid configuration ${key}: ${message}`);
    this.name = "ConfigError";
    this.key = key;
  }
}
