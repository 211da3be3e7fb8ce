/**
 * The client's configuration directory: where `client.yaml`, `known_hosts`, `known_peers` and `device_tokens`
 * live.
 *
 * @module
 */

import { join } from "node:path";

/** The environment variables that decide the configuration directory, in order of precedence. */
export const CONFIG_DIR_VARIABLES = ["AUTHCHAT_CONFIG_DIR", "XDG_CONFIG_HOME", "HOME"] as const;

/** One of {@linkcode CONFIG_DIR_VARIABLES}. */
export type ConfigDirVariable = typeof CONFIG_DIR_VARIABLES[number];

/**
 * Read the variables that decide the configuration directory, for {@linkcode configDir} and the default
 * paths of the files in it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configDir, configDirEnv } from "./config_dir.ts";
 * const env = configDirEnv((name) => name === "HOME" ? "/home/a" : undefined);
 * assert(configDir(env) === "/home/a/.config/authchat");
 * ```
 *
 * @param getEnv Reads one environment variable.
 * @returns Each variable of {@linkcode CONFIG_DIR_VARIABLES} and its value.
 */
export function configDirEnv(
  getEnv: (name: ConfigDirVariable) => string | undefined,
): Record<ConfigDirVariable, string | undefined> {
  return {
    AUTHCHAT_CONFIG_DIR: getEnv("AUTHCHAT_CONFIG_DIR"),
    XDG_CONFIG_HOME: getEnv("XDG_CONFIG_HOME"),
    HOME: getEnv("HOME"),
  };
}

/**
 * The configuration directory: `$AUTHCHAT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/authchat`, else
 * `~/.config/authchat`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configDir } from "./config_dir.ts";
 * assert(configDir({ HOME: "/home/a" }) === "/home/a/.config/authchat");
 * assert(configDir({ AUTHCHAT_CONFIG_DIR: "/etc/ac", HOME: "/home/a" }) === "/etc/ac");
 * ```
 *
 * @param env Environment variables.
 * @returns The directory, or `null` when none of those variables is set.
 */
export function configDir(env: Record<string, string | undefined>): string | null {
  if (env.AUTHCHAT_CONFIG_DIR) return env.AUTHCHAT_CONFIG_DIR;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "authchat");
  if (env.HOME) return join(env.HOME, ".config", "authchat");
  return null;
}
