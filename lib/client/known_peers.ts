/**
 * Trust on first use for other users' identity keys: the key first seen for a
 * user on a server is pinned in a known-peers file beside known_hosts, and a
 * different one later is reported as changed.
 *
 * Each line is `<server-endpoint> <user-key> <base64 raw Ed25519 key>`. Lines
 * starting with `#`, blank lines and malformed lines are ignored for lookups
 * but kept, byte for byte, when the file is rewritten (_keyed_lines.ts).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { KeyedLines } from "./_keyed_lines.ts";
import { defaultKnownHostsPath } from "./known_hosts.ts";

/** How a key compares with the pinned one. */
export type PeerKeyStatus = "new" | "match" | "changed";

/** Bytes of a raw Ed25519 public key. */
const KEY_BYTES = 32;

/**
 * Where the known-peers file lives: in the directory of
 * {@linkcode defaultKnownHostsPath}, named `known_peers`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultKnownPeersPath } from "./known_peers.ts";
 * assert(defaultKnownPeersPath({ HOME: "/home/a" }) === "/home/a/.config/authchat/known_peers");
 * ```
 *
 * @param env Environment variables.
 * @returns The path.
 * @throws {TypeError} When none of `AUTHCHAT_CONFIG_DIR`, `XDG_CONFIG_HOME` or `HOME` is set.
 */
export function defaultKnownPeersPath(env: Record<string, string | undefined>): string {
  return join(dirname(defaultKnownHostsPath(env)), "known_peers");
}

/**
 * The known-peers file. User keys are stored and compared exactly as given:
 * lower-casing them is the caller's job.
 *
 * @example
 * ```ts ignore
 * import { KnownPeers } from "./known_peers.ts";
 * const peers = new KnownPeers("/home/a/.config/authchat/known_peers");
 * const key = new Uint8Array(32);
 * if (await peers.check("chat.example:4433", "bob", key) === "new") {
 *   await peers.pin("chat.example:4433", "bob", key);
 * }
 * ```
 */
export class KnownPeers {
  #file: KeyedLines;

  /**
   * Use a known-peers file (created on first pin).
   *
   * @param path The file.
   */
  constructor(path: string) {
    this.#file = new KeyedLines(path, {
      name: "known_peers",
      valueName: "Key",
      valid: (value) => decodeBase64(value)?.length === KEY_BYTES,
    });
  }

  /** The file path. */
  get path(): string {
    return this.#file.path;
  }

  /**
   * The pinned key of a user on a server.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @returns The 32-byte key, or `undefined` when none is pinned.
   */
  async pinned(server: string, user: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    // The last line wins, as in known_hosts; pin never writes two.
    const key = await this.#file.get(server, user);
    return key === undefined ? undefined : decodeBase64(key)!;
  }

  /**
   * Compare a key with the pinned one, without pinning anything.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @param key The key just seen.
   * @returns `"new"` when none is pinned, `"match"` when equal, `"changed"` otherwise.
   */
  async check(server: string, user: string, key: Uint8Array): Promise<PeerKeyStatus> {
    const known = await this.pinned(server, user);
    if (known === undefined) return "new";
    return constantTimeEqual(known, key) ? "match" : "changed";
  }

  /**
   * Pin a key, adding a line or replacing the user's line in place. The file is
   * rewritten through a temporary file (in `privateFileWorkDir`) and a rename,
   * with mode 0600; its directory is created with mode 0700.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @param key The 32-byte raw Ed25519 key.
   * @throws {RangeError} When the key is not 32 bytes.
   * @throws {TypeError} When the endpoint or user is empty, contains white space, or the endpoint starts
   *   with `#`.
   */
  async pin(server: string, user: string, key: Uint8Array): Promise<void> {
    if (key.length !== KEY_BYTES) {
      throw new RangeError(`Peer key must be ${KEY_BYTES} bytes: got ${key.length}`);
    }
    await this.#file.set(server, user, encodeBase64(key));
  }
}
