/**
 * The device tokens a client was given at its logins (docs/PROTOCOL.md, section 7), one per server and
 * account, kept in a `device_tokens` file beside known_hosts and shown in the next LOGIN: with one, the
 * owner logs in at once even while strangers' guesses hold her address or account in backoff.
 *
 * Each line is `<server-endpoint> <user-key> <token>`. Lines starting with `#`, blank lines and malformed
 * lines are ignored for lookups but kept, byte for byte, when the file is rewritten (mode 0600, through a
 * temporary file and a rename: _keyed_lines.ts). A token only spares its holder the backoff others caused, and dies with
 * the password; still, it is the holder's, so the file is readable by its owner only.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { KeyedLines } from "./_keyed_lines.ts";
import { defaultKnownHostsPath } from "./known_hosts.ts";

/** Where a client keeps its device tokens, and what it asks of that place. */
export interface DeviceTokenStore {
  /**
   * The token kept for an account on a server.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The account's user key (lower-cased name).
   * @returns The token, or `undefined`.
   */
  get(server: string, user: string): Promise<string | undefined>;
  /**
   * Keep a token for an account on a server, replacing the one kept before.
   *
   * @param server The server endpoint.
   * @param user The user key.
   * @param token The token the server gave.
   */
  put(server: string, user: string, token: string): Promise<void>;
  /**
   * Drop the token of an account (deleted).
   *
   * @param server The server endpoint.
   * @param user The user key.
   */
  forget(server: string, user: string): Promise<void>;
}

/** What a token may look like in the file: base64, at most what the protocol carries. */
const TOKEN = /^[A-Za-z0-9+/]{1,256}={0,2}$/;

/**
 * Where the device-token file lives: in the directory of {@linkcode defaultKnownHostsPath}, named
 * `device_tokens`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultDeviceTokensPath } from "./device_tokens.ts";
 * assert(defaultDeviceTokensPath({ HOME: "/home/a" }) === "/home/a/.config/authchat/device_tokens");
 * ```
 *
 * @param env Environment variables.
 * @returns The path.
 * @throws {TypeError} When none of `AUTHCHAT_CONFIG_DIR`, `XDG_CONFIG_HOME` or `HOME` is set.
 */
export function defaultDeviceTokensPath(env: Record<string, string | undefined>): string {
  return join(dirname(defaultKnownHostsPath(env)), "device_tokens");
}

/**
 * The device-token file.
 *
 * @example
 * ```ts ignore
 * import { DeviceTokens } from "./device_tokens.ts";
 * const tokens = new DeviceTokens("/home/a/.config/authchat/device_tokens");
 * await tokens.put("chat.example:1992", "alice", token);
 * console.assert(await tokens.get("chat.example:1992", "alice") === token);
 * ```
 */
export class DeviceTokens implements DeviceTokenStore {
  #file: KeyedLines;

  /**
   * Use a device-token file (created on first write).
   *
   * @param path The file.
   */
  constructor(path: string) {
    this.#file = new KeyedLines(path, {
      name: "device_tokens",
      valueName: "Token",
      valid: (value) => TOKEN.test(value),
    });
  }

  /** The file path. */
  get path(): string {
    return this.#file.path;
  }

  /**
   * The token kept for an account on a server.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @returns The token, or `undefined` when none is kept.
   * @throws {Deno.errors.PermissionDenied} And other errors reading the file, but a missing file.
   */
  get(server: string, user: string): Promise<string | undefined> {
    return this.#file.get(server, user);
  }

  /**
   * Keep a token, replacing the account's line in place or adding one.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @param token The token (base64).
   * @throws {TypeError} When the endpoint or user is empty or contains white space, the endpoint starts
   *   with `#`, or the token is not base64.
   */
  put(server: string, user: string, token: string): Promise<void> {
    return this.#file.set(server, user, token);
  }

  /**
   * Drop an account's token (its lines go; the file is left alone when it has none).
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @throws {TypeError} When the endpoint or user could not be stored (see {@linkcode DeviceTokens.put}).
   */
  forget(server: string, user: string): Promise<void> {
    return this.#file.set(server, user, null);
  }
}
