/**
 * Bulk account creation for `authchat seed`: legacy `user:password` files and
 * PostgreSQL SCRAM verifier files. Blank lines and comments (lines whose first
 * non-blank character is `#`) are skipped; every other line ends in an outcome
 * with its line number: created, created but flagged "must change password"
 * (legacy files only), kept (the user already exists: a re-run changes
 * nothing), or rejected with a reason. Names are held to the rules of new
 * names (`prepareNewUsername`), and one that looks like an existing account's
 * (or another line's) is rejected.
 *
 * @module
 */

import { nameSkeletons } from "../auth/confusable_skeleton.ts";
import { prepareNewUsername } from "../auth/username.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { parseVerifier } from "../crypto/scram_verifier.ts";
import { createLegacyAccount } from "./create_account.ts";
import type { AccountSettings } from "./create_account.ts";
import type { UserStore } from "./user_store.ts";

/**
 * What happened to one line: `created`; `flagged` (created, but the password fails the policy, so the
 * account must change it before anything else); `kept` (an account of that name already exists and is
 * left as it is); `rejected`.
 */
export type ImportStatus = "created" | "flagged" | "kept" | "rejected";

/** What happened to one line. */
export interface ImportOutcome {
  /** 1-based line number in the file. */
  line: number;
  /** The user name on the line (may be empty for malformed lines). */
  user: string;
  /** What happened. */
  status: ImportStatus;
  /** Why it was flagged, kept or rejected (never the password). */
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

/** A line whose name is valid and appears once in its file. */
interface NamedLine extends Line {
  name: string;
  key: string;
}

/**
 * Split a `name:value` file into lines, tolerating `\r\n` and a byte-order mark. Blank lines and lines
 * whose first non-blank character is `#` are skipped; lines without a `:` are returned as rejections.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitUserLines } from "./account_import.ts";
 * const { lines, rejected } = splitUserLines("# users\r\nalice:pw:with:colons\r\n\nbob\n");
 * assert(lines[0]?.rest === "pw:with:colons" && lines[0]?.line === 2 && rejected.length === 1);
 * ```
 *
 * @param text File contents.
 * @returns Parsed lines and rejections.
 */
export function splitUserLines(text: string): { lines: Line[]; rejected: ImportOutcome[] } {
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const lines: Line[] = [];
  const rejected: ImportOutcome[] = [];
  rows.forEach((row, i) => {
    const start = row.trimStart();
    if (start === "" || start.startsWith("#")) return;
    const at = row.indexOf(":");
    if (at < 0) {
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

/**
 * The outcome of a line the account creation refused: kept when the account exists already, else rejected
 * (a name that only looks like an account's is not that account).
 */
function refused(l: Line, err: unknown): ImportOutcome {
  if (err instanceof ProtocolError && err.code === "USER_EXISTS" && err.details.reason !== "confusable") {
    return { line: l.line, user: l.user, status: "kept", reason: "already exists" };
  }
  return { line: l.line, user: l.user, status: "rejected", reason: reasonOf(err) };
}

/** Why a legacy account must change its password, in words (the policy's refusal). */
function weaknessText(err: ProtocolError): string {
  const detail = err.message.replace(/^Password refused: /, "");
  switch (err.details.reason) {
    case "too_short":
      return `password is too short: ${detail}`;
    case "too_long":
      return `password is too long: ${detail}`;
    case "common":
      return "password is too common";
    case "contains_username":
      return "password contains the user name";
    case "contains_service":
      return "password contains the service name";
    default:
      return detail;
  }
}

/**
 * Check every line's name. A name on several lines is ambiguous (which password was meant?): none of them
 * is imported; nor are names of several lines that look alike (which one is the real one?). Names that
 * cannot be new names are rejected.
 */
function uniqueNames(lines: Line[], outcomes: ImportOutcome[]): NamedLine[] {
  const named: NamedLine[] = [];
  for (const l of lines) {
    try {
      named.push({ ...l, ...prepareNewUsername(l.user) });
    } catch (err) {
      outcomes.push({ line: l.line, user: l.user, status: "rejected", reason: reasonOf(err) });
    }
  }
  const unique: NamedLine[] = [];
  for (const group of lookAlikeGroups(named)) {
    if (group.length === 1) {
      unique.push(group[0]!);
      continue;
    }
    const where = group.map((l) => l.line).join(", ");
    const reason = group.every((l) => l.key === group[0]!.key)
      ? `same user on lines ${where}: none imported`
      : `names that look alike on lines ${where}: none imported`;
    for (const l of group) outcomes.push({ line: l.line, user: l.user, status: "rejected", reason });
  }
  return unique.sort((a, b) => a.line - b.line);
}

/**
 * The lines in groups of names that look alike, directly or through other lines: the same look-alike key
 * in any case (the same key included) or as shown. Lines keep their order within a group.
 */
function lookAlikeGroups(lines: NamedLine[]): NamedLine[][] {
  const parent = lines.map((_, i) => i);
  const root = (i: number): number => parent[i] === i ? i : (parent[i] = root(parent[i]!));
  const firstWith = new Map<string, number>();
  lines.forEach((l, i) => {
    const { folded, shown } = nameSkeletons(l.name, l.key);
    for (const key of [`f:${folded}`, `s:${shown}`]) {
      const other = firstWith.get(key);
      if (other === undefined) firstWith.set(key, i);
      else parent[root(i)] = root(other);
    }
  });
  const groups = new Map<number, NamedLine[]>();
  lines.forEach((l, i) => {
    const group = groups.get(root(i));
    if (group) group.push(l);
    else groups.set(root(i), [l]);
  });
  return [...groups.values()];
}

async function runAll(
  lines: NamedLine[],
  work: (line: NamedLine) => Promise<void>,
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
 * Import a legacy `user:password` file (the first `:` separates; passwords may contain `:`), such as the
 * users file of the challenge-response server authchat replaces. A password the policy refuses as weak is
 * imported all the same (it worked yesterday) and the account flagged "must change password"; an empty
 * password, or one SASLprep refuses, is rejected. The plaintext is never stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importLegacyUsers } from "./account_import.ts";
 * import { SqliteUserStore } from "./sqlite_user_store.ts";
 * const store = SqliteUserStore.open(":memory:");
 * const settings = { iterations: 4096, minPasswordLength: 10 };
 * const outcomes = await importLegacyUsers(store, "# old users\nuser10:password10\n", settings);
 * assert(outcomes[0]?.status === "flagged" && outcomes[0]?.reason === "password is too common");
 * const again = await importLegacyUsers(store, "user10:password10\n", settings);
 * assert(again[0]?.status === "kept");
 * store.close();
 * ```
 *
 * @param store The store.
 * @param text File contents.
 * @param options Settings, progress and concurrency.
 * @returns One outcome per line that is neither blank nor a comment, in line order.
 */
export async function importLegacyUsers(
  store: UserStore,
  text: string,
  options: ImportOptions,
): Promise<ImportOutcome[]> {
  const { lines, rejected } = splitUserLines(text);
  const outcomes = [...rejected];
  await runAll(uniqueNames(lines, outcomes), async (l) => {
    try {
      const { weakness } = await createLegacyAccount(store, { user: l.user, password: l.rest }, options);
      outcomes.push(
        weakness
          ? { line: l.line, user: l.user, status: "flagged", reason: weaknessText(weakness) }
          : { line: l.line, user: l.user, status: "created" },
      );
    } catch (err) {
      outcomes.push(refused(l, err));
    }
  }, options);
  return sorted(outcomes);
}

/**
 * Import `user:SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` lines (PostgreSQL's
 * `pg_authid.rolpassword`); the accounts log in with their original passwords. Nobody here knows those
 * passwords, so none is flagged.
 *
 * @param store The store.
 * @param text File contents.
 * @param options Progress callback and creation time.
 * @returns One outcome per line that is neither blank nor a comment, in line order.
 */
export async function importVerifiers(
  store: UserStore,
  text: string,
  options: { onProgress?: ProgressHandler; now?: number } = {},
): Promise<ImportOutcome[]> {
  const { lines, rejected } = splitUserLines(text);
  const outcomes = [...rejected];
  await runAll(uniqueNames(lines, outcomes), async (l) => {
    try {
      parseVerifier(l.rest);
      await store.createUser({
        name: l.name,
        nameKey: l.key,
        verifier: l.rest,
        now: options.now ?? Date.now(),
      });
      outcomes.push({ line: l.line, user: l.name, status: "created" });
    } catch (err) {
      outcomes.push(refused(l, err));
    }
  }, { onProgress: options.onProgress, concurrency: 1 });
  return sorted(outcomes);
}
