/**
 * Trust on first use for other users' identity keys: the key first seen for a
 * user on a server is pinned in a known-peers file beside known_hosts, and a
 * different one later is reported as changed.
 *
 * Each line is `<server-endpoint> <user-key> <base64 raw Ed25519 key>`. Lines
 * starting with `#`, blank lines and malformed lines are ignored for lookups
 * but kept, byte for byte, when the file is rewritten.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { defaultKnownHostsPath } from "./known_hosts.ts";
import { privateFileWorkDir, readLines, rewritePrivateFile } from "./private_file.ts";

/** How a key compares with the pinned one. */
export type PeerKeyStatus = "new" | "match" | "changed";

/** Bytes of a raw Ed25519 public key. */
const KEY_BYTES = 32;

interface Entry {
  server: string;
  user: string;
  key: Uint8Array<ArrayBuffer>;
}

/**
 * Where the known-peers file lives: in the directory of
 * {@linkcode defaultKnownHostsPath}, named `known_peers`.
 *
 * @example
 * ```ts
 * import { defaultKnownPeersPath } from "./known_peers.ts";
 * console.assert(defaultKnownPeersPath({ HOME: "/home/a" }) === "/home/a/.config/authchat/known_peers");
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
 * Where a known-peers file is rewritten before it replaces the file: a private directory beside it, so the
 * client needs write access to the file and this directory only, never to the directory the file is in
 * (which may be a home directory, or `/`).
 *
 * @example
 * ```ts
 * import { knownPeersWorkDir } from "./known_peers.ts";
 * console.assert(knownPeersWorkDir("/home/a/trust/known_peers") === "/home/a/trust/.known_peers.tmp");
 * ```
 *
 * @param path The known-peers file.
 * @returns The directory.
 */
export function knownPeersWorkDir(path: string): string {
  return privateFileWorkDir(path);
}

/** A line's entry, or `null` for comments, blank and malformed lines. */
function parseLine(line: string): Entry | null {
  const [server, user, key, extra] = line.trim().split(/\s+/);
  if (!server || server.startsWith("#") || !user || !key) return null;
  if (extra !== undefined && !extra.startsWith("#")) return null;
  const raw = decodeBase64(key);
  if (raw === null || raw.length !== KEY_BYTES) return null;
  return { server, user, key: raw };
}

/** Refuse a value that would not read back as one field of a line. */
function checkField(value: string, what: string): void {
  if (value === "" || /\s/u.test(value) || (what === "Server endpoint" && value.startsWith("#"))) {
    throw new TypeError(`${what} cannot be stored in known_peers: ${JSON.stringify(value)}`);
  }
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
  /** The file path. */
  readonly path: string;
  /** Pins run one at a time, so that two rewrites in this process never lose each other's line. */
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Use a known-peers file (created on first pin).
   *
   * @param path The file.
   */
  constructor(path: string) {
    this.path = path;
  }

  #lines(): Promise<string[]> {
    return readLines(this.path);
  }

  /**
   * The pinned key of a user on a server.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @returns The 32-byte key, or `undefined` when none is pinned.
   */
  async pinned(server: string, user: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    let found: Uint8Array<ArrayBuffer> | undefined;
    for (const line of await this.#lines()) {
      const entry = parseLine(line);
      // The last line wins, as in known_hosts; pin never writes two.
      if (entry && entry.server === server && entry.user === user) found = entry.key;
    }
    return found;
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
   * rewritten through a temporary file (in {@linkcode knownPeersWorkDir}) and a
   * rename, with mode 0600; its directory is created with mode 0700.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @param key The 32-byte raw Ed25519 key.
   * @throws {RangeError} When the key is not 32 bytes.
   * @throws {TypeError} When the endpoint or user is empty, contains white space, or the endpoint starts
   *   with `#`.
   */
  pin(server: string, user: string, key: Uint8Array): Promise<void> {
    const run = this.#queue.then(() => this.#pin(server, user, key));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #pin(server: string, user: string, key: Uint8Array): Promise<void> {
    checkField(server, "Server endpoint");
    checkField(user, "User");
    if (key.length !== KEY_BYTES) {
      throw new RangeError(`Peer key must be ${KEY_BYTES} bytes: got ${key.length}`);
    }
    const line = `${server} ${user} ${encodeBase64(key)}`;
    const out: string[] = [];
    let placed = false;
    for (const old of await this.#lines()) {
      const entry = parseLine(old);
      if (entry && entry.server === server && entry.user === user) {
        if (!placed) out.push(line);
        placed = true;
      } else {
        out.push(old);
      }
    }
    if (!placed) out.push(line);
    await rewritePrivateFile(this.path, out.map((l) => `${l}\n`).join(""));
  }
}
