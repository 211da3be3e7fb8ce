/**
 * The client's configuration directory: where `client.yaml`, `known_hosts` and `known_peers` live.
 *
 * @module
 */

import { join } from "node:path";

/** The environment variables that decide the configuration directory, in order of precedence. */
export const CONFIG_DIR_VARIABLES = ["AUTHCHAT_CONFIG_DIR", "XDG_CONFIG_HOME", "HOME"] as const;

/**
 * The configuration directory: `$AUTHCHAT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/authchat`, else
 * `~/.config/authchat`.
 *
 * @example
 * ```ts
 * import { configDir } from "./config_dir.ts";
 * console.assert(configDir({ HOME: "/home/a" }) === "/home/a/.config/authchat");
 * console.assert(configDir({ AUTHCHAT_CONFIG_DIR: "/etc/ac", HOME: "/home/a" }) === "/etc/ac");
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
