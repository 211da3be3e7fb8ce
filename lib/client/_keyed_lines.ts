/**
 * The line format of the client's files kept per server and user (known_peers, device_tokens): each line is
 * `<server-endpoint> <user-key> <value>`, optionally followed by a `#` comment. Lines starting with `#`,
 * blank lines and lines whose fields do not read are ignored for lookups but kept, byte for byte, when the
 * file is rewritten. The last line of a server and user wins when reading (as in known_hosts); a write
 * leaves one, in the place of the first. Rewrites go through {@linkcode rewritePrivateFile} (mode 0600)
 * and run one at a time, so two in this process never lose each other's line.
 *
 * @module
 */

import { readLines, rewritePrivateFile } from "./private_file.ts";

/** What a {@linkcode KeyedLines} file holds, for its errors and its values. */
export interface KeyedLinesFormat {
  /** The file's name in errors (`known_peers`). */
  name: string;
  /** What the value is called in errors (`Key`). */
  valueName: string;
  /** Whether a value field reads as a value (else the line is ignored, and such a value not written). */
  valid(value: string): boolean;
}

/**
 * A file of `<server> <user> <value>` lines (see the module documentation).
 *
 * @example
 * ```ts ignore
 * import { KeyedLines } from "./_keyed_lines.ts";
 * const file = new KeyedLines("/tmp/pins", { name: "pins", valueName: "Pin", valid: (v) => /^\d+$/.test(v) });
 * await file.set("h:1", "alice", "42");
 * console.assert(await file.get("h:1", "alice") === "42");
 * ```
 */
export class KeyedLines {
  /** The file path. */
  readonly path: string;
  #format: KeyedLinesFormat;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Use a file (created on first write).
   *
   * @param path The file.
   * @param format Its name and what its values look like.
   */
  constructor(path: string, format: KeyedLinesFormat) {
    this.path = path;
    this.#format = format;
  }

  /**
   * The value of a server's user: that of the last line that reads.
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @returns The value, or `undefined` when no line has one.
   * @throws {Deno.errors.PermissionDenied} And other errors reading the file, but a missing file.
   */
  async get(server: string, user: string): Promise<string | undefined> {
    let found: string | undefined;
    for (const line of await readLines(this.path)) {
      const entry = this.#parse(line);
      if (entry && entry.server === server && entry.user === user) found = entry.value;
    }
    return found;
  }

  /**
   * Write a server's user's value in place of its first line (or a new last line), dropping its other
   * lines; or, with `null`, drop them all (the file is left alone when it has none).
   *
   * @param server The server endpoint, `host:port`.
   * @param user The user key.
   * @param value The value, or `null` to drop the user's lines.
   * @returns Settles when the file is rewritten.
   * @throws {TypeError} At once (not in the promise), when the endpoint or user is empty or contains white
   *   space, the endpoint starts with `#`, or the value would not read back as one.
   */
  set(server: string, user: string, value: string | null): Promise<void> {
    this.#check(server, "Server endpoint", server.startsWith("#"));
    this.#check(user, "User", false);
    if (value !== null) this.#check(value, this.#format.valueName, !this.#format.valid(value));
    const line = value === null ? null : `${server} ${user} ${value}`;
    const run = this.#queue.then(async () => {
      const out: string[] = [];
      let found = false;
      for (const old of await readLines(this.path)) {
        const entry = this.#parse(old);
        if (entry?.server !== server || entry.user !== user) {
          out.push(old);
          continue;
        }
        if (!found && line !== null) out.push(line);
        found = true;
      }
      if (!found && line === null) return;
      if (!found) out.push(line!);
      await rewritePrivateFile(this.path, out.map((l) => `${l}\n`).join(""));
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A line's fields, or `null` for comments, blank lines and lines that do not read. */
  #parse(line: string): { server: string; user: string; value: string } | null {
    const [server, user, value, extra] = line.trim().split(/\s+/);
    if (!server || server.startsWith("#") || !user || !value || !this.#format.valid(value)) return null;
    if (extra !== undefined && !extra.startsWith("#")) return null;
    return { server, user, value };
  }

  /** Refuse a field that would not read back as itself. */
  #check(field: string, what: string, refused: boolean): void {
    if (refused || field === "" || /\s/u.test(field)) {
      throw new TypeError(
        `${what} cannot be stored in ${this.#format.name}: ${JSON.stringify(field.slice(0, 64))}`,
      );
    }
  }
}
