/**
 * Trust on first use: the first fingerprint seen for a server's TLS
 * certificate, UDP session certificate or sealing key is remembered in a
 * known-hosts file, and a different one later is refused.
 *
 * Each line is `<host>:<port> <kind> SHA256:<fingerprint>`, kind `tls`,
 * `udp` or `seal`; `#` starts a comment.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { isFingerprint } from "../crypto/fingerprint.ts";
import { configDir } from "./config_dir.ts";

/**
 * What a fingerprint belongs to: the certificate TLS serves, the certificate a UDP session's ACCEPT carries
 * (the same one, remembered apart: docs/PROTOCOL.md 20.10), or the sealing key of plain TCP.
 */
export type KeyKind = "tls" | "udp" | "seal";

const KEY_KINDS: ReadonlySet<string> = new Set<KeyKind>(["tls", "udp", "seal"]);

/** A server key did not match what this client trusts. */
export class TrustError extends Error {
  /**
   * Make a trust error.
   *
   * @param message What did not match, and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "TrustError";
  }
}

/**
 * Where the known-hosts file lives: `$AUTHCHAT_CONFIG_DIR/known_hosts`, else
 * `$XDG_CONFIG_HOME/authchat/known_hosts`, else `~/.config/authchat/known_hosts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultKnownHostsPath } from "./known_hosts.ts";
 * assert(defaultKnownHostsPath({ HOME: "/home/a" }) === "/home/a/.config/authchat/known_hosts");
 * ```
 *
 * @param env Environment variables.
 * @returns The path.
 * @throws {TypeError} When none of those variables is set.
 */
export function defaultKnownHostsPath(env: Record<string, string | undefined>): string {
  const dir = configDir(env);
  if (dir !== null) return join(dir, "known_hosts");
  throw new TypeError(
    "No configuration directory: set HOME, XDG_CONFIG_HOME or AUTHCHAT_CONFIG_DIR, or pass --known-hosts",
  );
}

/** The known-hosts file. */
export class KnownHosts {
  /** The file path. */
  readonly path: string;

  /**
   * Use a known-hosts file (created on first write).
   *
   * @param path The file.
   */
  constructor(path: string) {
    this.path = path;
  }

  async #entries(): Promise<Map<string, string>> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const entries = new Map<string, string>();
    for (const line of text.split(/\r?\n/)) {
      const [endpoint, kind, fp] = line.replace(/#.*/, "").trim().split(/\s+/);
      if (endpoint && kind !== undefined && KEY_KINDS.has(kind) && fp && isFingerprint(fp)) {
        entries.set(`${endpoint} ${kind}`, fp);
      }
    }
    return entries;
  }

  /**
   * The remembered fingerprint of a server key.
   *
   * @param endpoint `host:port`.
   * @param kind Certificate or sealing key.
   * @returns The fingerprint, or `undefined` when never seen.
   */
  async lookup(endpoint: string, kind: KeyKind): Promise<string | undefined> {
    return (await this.#entries()).get(`${endpoint} ${kind}`);
  }

  /**
   * Remember a server key.
   *
   * @param endpoint `host:port`.
   * @param kind Certificate or sealing key.
   * @param fingerprint Its fingerprint.
   */
  async remember(endpoint: string, kind: KeyKind, fingerprint: string): Promise<void> {
    const append = () =>
      Deno.writeTextFile(this.path, `${endpoint} ${kind} ${fingerprint}\n`, { append: true, mode: 0o600 });
    try {
      await append();
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      // The directory is made only when missing: the client may write this file, not the directory it is in.
      await Deno.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      await append();
    }
  }

  /**
   * Check a key against the file: remember it when new, refuse it when different.
   *
   * @param endpoint `host:port`.
   * @param kind Certificate or sealing key.
   * @param fingerprint The fingerprint just seen.
   * @returns `"known"` or `"new"` (now remembered).
   * @throws {TrustError} When a different fingerprint is remembered.
   */
  async verify(endpoint: string, kind: KeyKind, fingerprint: string): Promise<"known" | "new"> {
    const known = await this.lookup(endpoint, kind);
    if (known === fingerprint) return "known";
    if (known !== undefined) {
      throw new TrustError(changedKeyWarning(endpoint, kind, known, fingerprint, this.path));
    }
    await this.remember(endpoint, kind, fingerprint);
    return "new";
  }
}

/**
 * The loud message for a changed server key.
 *
 * @param endpoint `host:port`.
 * @param kind Certificate or sealing key.
 * @param expected Remembered fingerprint.
 * @param actual Fingerprint seen now.
 * @param file The known-hosts file.
 * @returns The message.
 */
export function changedKeyWarning(
  endpoint: string,
  kind: KeyKind,
  expected: string,
  actual: string,
  file: string,
): string {
  const what = { tls: "TLS CERTIFICATE", udp: "UDP SESSION CERTIFICATE", seal: "SEALING KEY" }[kind];
  const bar = "@".repeat(64);
  return [
    bar,
    `@  WARNING: THE SERVER ${what} OF ${endpoint} HAS CHANGED!`,
    bar,
    "Someone may be intercepting this connection, or the server's keys were replaced.",
    `Expected ${expected}`,
    `Got      ${actual}`,
    `Refusing to connect. If the change is expected, remove the line for ${endpoint} ${kind} from`,
    `${file}, or pass --fingerprint with the new value after checking it with the server's operator.`,
  ].join("\n");
}
