/**
 * Bulk account creation for `authchat seed`: legacy `user:password` files and
 * PostgreSQL SCRAM verifier files. Every line ends in an outcome with its line
 * number; nothing is skipped silently.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { parseVerifier } from "../crypto/scram_verifier.ts";
import { createAccount } from "./create_account.ts";
import type { AccountSettings } from "./create_account.ts";
import type { UserStore } from "./user_store.ts";

/** What happened to one line. */
export interface ImportOutcome {
  /** 1-based line number in the file. */
  line: number;
  /** The user name on the line (may be empty for malformed lines). */
  user: string;
  /** Created, or rejected with a reason. */
  status: "created" | "rejected";
  /** Why it was rejected. */
  reason?: string;
}

/** Progress callback: lines done and total. */
export type ProgressHandler = (done: number, total: number) => void;

/** Options of the import functions. */
export interface ImportOptions extends AccountSettings {
  /** Told after each line. */
  onProgress?: ProgressHandler;
  /** Key derivations run at once (default 2). */
  concurrency?: number;
}

interface Line {
  line: number;
  user: string;
  rest: string;
}

/**
 * Split a `name:value` file into lines, tolerating `\r\n` and a byte-order mark.
 * Lines without a `:` and blank lines are returned as rejections.
 *
 * @example
 * ```ts
 * import { splitUserLines } from "./account_import.ts";
 * const { lines, rejected } = splitUserLines("alice:pw:with:colons\r\n\nbob\n");
 * console.assert(lines[0]?.rest === "pw:with:colons" && rejected.length === 2);
 * ```
 *
 * @param text File contents.
 * @returns Parsed lines and rejections.
 */
export function splitUserLines(text: string): { lines: Line[]; rejected: ImportOutcome[] } {
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (rows.at(-1) === "") rows.pop();
  const lines: Line[] = [];
  const rejected: ImportOutcome[] = [];
  rows.forEach((row, i) => {
    const at = row.indexOf(":");
    if (row.trim() === "") rejected.push({ line: i + 1, user: "", status: "rejected", reason: "empty line" });
    else if (at < 0) {
      rejected.push({ line: i + 1, user: "", status: "rejected", reason: "no ':' between user and value" });
    } else lines.push({ line: i + 1, user: row.slice(0, at), rest: row.slice(at + 1) });
  });
  return { lines, rejected };
}

function reasonOf(err: unknown): string {
  if (err instanceof ProtocolError) return `${err.message} (${err.code})`;
  if (err instanceof TypeError || err instanceof RangeError) return err.message;
  throw err;
}

async function runAll(
  lines: Line[],
  work: (line: Line) => Promise<void>,
  options: { onProgress?: ProgressHandler | undefined; concurrency?: number | undefined },
): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < lines.length) {
      const line = lines[next++]!;
      await work(line);
      options.onProgress?.(++done, lines.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));
}

function sorted(outcomes: ImportOutcome[]): ImportOutcome[] {
  return outcomes.sort((a, b) => a.line - b.line);
}

/**
 * Import a legacy `user:password` file (the first `:` separates; passwords may contain `:`).
 * The password policy applies; the plaintext is never stored.
 *
 * @param store The store.
 * @param text File contents.
 * @param options Settings, progress and concurrency.
 * @returns One outcome per line, in line order.
 */
export async function importLegacyUsers(
  store: UserStore,
  text: string,
  options: ImportOptions,
): Promise<ImportOutcome[]> {
  const { lines, rejected } = splitUserLines(text);
  const outcomes = [...rejected];
  // A name on several lines is ambiguous (which password was meant?): none of them is imported.
  const byKey = new Map<string, Line[]>();
  for (const l of lines) {
    let key: string;
    try {
      key = prepareUsername(l.user).key;
    } catch (err) {
      outcomes.push({ line: l.line, user: l.user, status: "rejected", reason: reasonOf(err) });
      continue;
    }
    byKey.set(key, [...(byKey.get(key) ?? []), l]);
  }
  const unique: Line[] = [];
  for (const group of byKey.values()) {
    if (group.length === 1) {
      unique.push(group[0]!);
      continue;
    }
    const where = group.map((l) => l.line).join(", ");
    for (const l of group) {
      outcomes.push({
        line: l.line,
        user: l.user,
        status: "rejected",
        reason: `same user on lines ${where}: none imported`,
      });
    }
  }
  await runAll(unique, async (l) => {
    try {
      await createAccount(store, { user: l.user, password: l.rest }, options);
      outcomes.push({ line: l.line, user: l.user, status: "created" });
    } catch (err) {
      outcomes.push({ line: l.line, user: l.user, status: "rejected", reason: reasonOf(err) });
    }
  }, options);
  return sorted(outcomes);
}

/**
 * Import `user:SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` lines (PostgreSQL's
 * `pg_authid.rolpassword`); the accounts log in with their original passwords.
 *
 * @param store The store.
 * @param text File contents.
 * @param options Progress callback and creation time.
 * @returns One outcome per line, in line order.
 */
export async function importVerifiers(
  store: UserStore,
  text: string,
  options: { onProgress?: ProgressHandler; now?: number } = {},
): Promise<ImportOutcome[]> {
  const { lines, rejected } = splitUserLines(text);
  const outcomes = [...rejected];
  await runAll(lines, async (l) => {
    try {
      const { name, key } = prepareUsername(l.user);
      parseVerifier(l.rest);
      await store.createUser({ name, nameKey: key, verifier: l.rest, now: options.now ?? Date.now() });
      outcomes.push({ line: l.line, user: name, status: "created" });
    } catch (err) {
      outcomes.push({ line: l.line, user: l.user, status: "rejected", reason: reasonOf(err) });
    }
  }, { onProgress: options.onProgress, concurrency: 1 });
  return sorted(outcomes);
}
