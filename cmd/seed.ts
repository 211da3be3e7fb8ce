/**
 * `authchat seed`: create or migrate the user store, add demo users, one
 * user, a legacy `user:password` file or PostgreSQL SCRAM verifiers.
 *
 * @module
 */

import { join } from "node:path";
import { createAccount } from "../lib/store/create_account.ts";
import { importLegacyUsers, importVerifiers } from "../lib/store/account_import.ts";
import type { ImportOutcome, ImportStatus, ProgressHandler } from "../lib/store/account_import.ts";
import { SCHEMA_VERSION } from "../lib/store/migrations.ts";
import { redactDatabaseUrl } from "../lib/store/database_location.ts";
import { DatabaseUnavailableError } from "../lib/store/database_unavailable.ts";
import { openUserStore } from "../lib/store/open_user_store.ts";
import { describeError, ProtocolError } from "../lib/codec/protocol_error.ts";
import type { ServerConfig } from "../lib/server/server_config.ts";
import { readPasswordFile } from "./_password_file.ts";
import { UsageError } from "./_usage_error.ts";

/** Flags of `authchat seed` (data directory and iterations are in the config). */
export interface SeedFlags {
  demo?: boolean;
  user?: string;
  passwordFile?: string;
  from?: string;
  importVerifiers?: string;
}

/** The demo accounts. */
export const DEMO_USERS: readonly string[] = ["alice", "bob", "charlie", "eve", "admin"];

const ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";

/**
 * A strong random password: four groups of five characters from a 31-letter
 * alphabet without look-alikes (about 99 bits).
 *
 * @returns The password.
 */
export function randomPassword(): string {
  const chars: string[] = [];
  while (chars.length < 20) {
    for (const byte of crypto.getRandomValues(new Uint8Array(32))) {
      // Rejection sampling keeps every letter equally likely.
      if (byte < 248 && chars.length < 20) chars.push(ALPHABET[byte % 31]!);
    }
  }
  return [0, 5, 10, 15].map((i) => chars.slice(i, i + 5).join("")).join("-");
}

function progress(label: string): ProgressHandler {
  let shown = 0;
  return (done, total) => {
    if (total < 20) return;
    const step = Math.ceil(total / 10);
    if (done === total || done - shown >= step) {
      shown = done;
      console.error(`${label}: ${done}/${total} lines`);
    }
  };
}

/** How many lines or accounts ended each way. */
type Counts = Record<ImportStatus, number>;

/**
 * Per-line reports: a rejected line on stderr, a flagged account on stdout (it exists now, like `created
 * NAME`, and its user must be told). Created and kept accounts are only counted. Never a password.
 */
function report(outcomes: ImportOutcome[], file: string, counts: Counts): void {
  for (const o of outcomes) {
    counts[o.status]++;
    if (o.status === "rejected") {
      console.error(`${file}:${o.line}: rejected ${JSON.stringify(o.user)}: ${o.reason}`);
    } else if (o.status === "flagged") {
      console.log(
        `${file}:${o.line}: imported ${JSON.stringify(o.user)}: must change password (${o.reason})`,
      );
    }
  }
}

async function readInput(path: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new UsageError(`Cannot read ${flag} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Run seed.
 *
 * @param flags Parsed flags.
 * @param config Resolved configuration (database path, iterations, policy).
 * @returns Exit code: 0, or 1 when any account or line was rejected (existing accounts are kept, which is
 *   no failure: an import can be run again), 2 when its PostgreSQL database cannot be reached or refuses
 *   the login (said on stderr, the URL without its password).
 * @throws {UsageError} For contradictory flags or unreadable input files.
 */
export async function runSeed(flags: SeedFlags, config: ServerConfig): Promise<number> {
  if ((flags.user === undefined) !== (flags.passwordFile === undefined)) {
    throw new UsageError("--user and --password-file go together");
  }
  const legacy = flags.from === undefined ? undefined : await readInput(flags.from, "--from");
  const verifiers = flags.importVerifiers === undefined
    ? undefined
    : await readInput(flags.importVerifiers, "--import-verifiers");
  const password = flags.passwordFile === undefined
    ? undefined
    : await readPasswordFile(flags.passwordFile, "--password-file");
  const settings = { iterations: config.scram_iterations, minPasswordLength: config.password_min_length };
  let store;
  try {
    store = await openUserStore(config.database, { poolSize: config.database_pool_size });
  } catch (err) {
    if (!(err instanceof DatabaseUnavailableError)) throw err;
    console.error(`error: ${err.message}`);
    return 2;
  }
  const counts: Counts = { created: 0, flagged: 0, kept: 0, rejected: 0 };
  try {
    if (flags.demo) {
      const rows: [string, string][] = [];
      for (const user of DEMO_USERS) {
        if (await store.findUser(user)) {
          console.error(`demo user ${user} already exists: kept unchanged`);
          counts.kept++;
          continue;
        }
        const secret = randomPassword();
        try {
          await createAccount(store, { user, password: secret }, settings);
        } catch (err) {
          // An account whose name looks like it (made before names had to look unlike each other).
          if (!(err instanceof ProtocolError)) throw err;
          console.error(`rejected demo user ${user}: ${describeError(err)}`);
          counts.rejected++;
          continue;
        }
        rows.push([user, secret]);
      }
      counts.created += rows.length;
      if (rows.length > 0) {
        // Shown first: the accounts exist now, so their passwords must reach the operator even if
        // the file cannot be written.
        console.log("user     password");
        for (const [u, p] of rows) console.log(`${u.padEnd(8)} ${p}`);
        const file = join(config.data_dir, "demo-passwords.txt");
        try {
          await Deno.mkdir(config.data_dir, { recursive: true, mode: 0o700 });
          await Deno.writeTextFile(file, rows.map(([u, p]) => `${u}:${p}\n`).join(""), {
            append: true,
            mode: 0o600,
          });
          await Deno.chmod(file, 0o600);
          console.log(`(shown once; also in ${file}, mode 0600)`);
        } catch (err) {
          console.error(
            `warning: could not write ${file}: ${(err as Error).message}; note the passwords above`,
          );
        }
      }
    }
    if (flags.user !== undefined && password !== undefined) {
      try {
        const record = await createAccount(store, { user: flags.user, password }, settings);
        console.log(`created ${record.name}`);
        counts.created++;
      } catch (err) {
        console.error(`rejected ${JSON.stringify(flags.user)}: ${describeError(err)}`);
        counts.rejected++;
      }
    }
    for (
      const [text, file, run] of [
        [
          legacy,
          flags.from,
          () => importLegacyUsers(store, legacy!, { ...settings, onProgress: progress("importing") }),
        ],
        [
          verifiers,
          flags.importVerifiers,
          () => importVerifiers(store, verifiers!, { onProgress: progress("importing verifiers") }),
        ],
      ] as const
    ) {
      if (text === undefined || file === undefined) continue;
      report(await run(), file, counts);
    }
    const total = await store.countUsers();
    console.log(
      `seed: ${counts.created} created, ${counts.flagged} created but must change password, ` +
        `${counts.kept} kept (already existed), ${counts.rejected} rejected; ` +
        `${total} accounts in ${redactDatabaseUrl(config.database)} (schema version ${SCHEMA_VERSION})`,
    );
  } finally {
    await store.close();
  }
  return counts.rejected === 0 ? 0 : 1;
}
