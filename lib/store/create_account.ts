/**
 * Creating an account: from a name and a password on the server's side
 * (`seed --user`, `seed --demo` and legacy imports), or from a name and the
 * verifier a client computed (REGISTER: the password never reaches the server).
 * A new name must pass the PRECIS username rules and must not look like an
 * existing account's (`prepareNewUsername`, `UserStore.createUser`).
 *
 * @module
 */

import { checkPassword } from "../auth/password_policy.ts";
import type { PolicyReason } from "../auth/password_policy.ts";
import { saslPrep } from "../auth/saslprep.ts";
import { prepareNewUsername } from "../auth/username.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { createVerifier, formatVerifier } from "../crypto/scram_verifier.ts";
import { nameLooksTaken, nameTaken } from "./name_taken.ts";
import type { IdentityRecord, UserRecord, UserStore } from "./user_store.ts";

/** Settings account creation follows. */
export interface AccountSettings {
  /** PBKDF2 iterations of the verifier. */
  iterations: number;
  /** Shortest password accepted. */
  minPasswordLength: number;
  /** Creation time (default now). */
  now?: number;
}

/**
 * Check a name and password and store a new account with a SCRAM verifier.
 * The password itself is never stored.
 *
 * @param store The store.
 * @param credentials Name and password as typed, and the identity key the client registers, if any.
 * @param settings Iterations and policy.
 * @returns The stored account.
 * @throws {ProtocolError} `INVALID_USERNAME` (the rules of new names, `prepareNewUsername`),
 *   `PASSWORD_POLICY` or `USER_EXISTS` (`reason: "confusable"` for a look-alike of an account's name).
 */
export async function createAccount(
  store: UserStore,
  credentials: { user: string; password: string; identity?: IdentityRecord | undefined },
  settings: AccountSettings,
): Promise<UserRecord> {
  const { name, key } = prepareNewUsername(credentials.user);
  const password = await checkPassword(credentials.password, {
    minLength: settings.minPasswordLength,
    username: name,
  });
  return await derive(store, { name, key }, password, { identity: credentials.identity }, settings);
}

/**
 * The policy refusals a legacy password may have and still be imported (flagged): SCRAM carries such a
 * password as well as any other. A password SASLprep refuses (`prohibited_character`) cannot be carried
 * at all, so it is not among them.
 */
const WEAK_REASONS: ReadonlySet<PolicyReason> = new Set([
  "too_short",
  "too_long",
  "common",
  "contains_username",
  "contains_service",
]);

/** An account a legacy import created. */
export interface LegacyAccount {
  /** The stored account. */
  record: UserRecord;
  /**
   * Why the account must change its password (the policy's refusal, code `PASSWORD_POLICY` with its
   * `reason`), or `null` when the password passes the policy and the account is not flagged.
   */
  weakness: ProtocolError | null;
}

/**
 * Store an account imported from a legacy `user:password` file. Its password worked in the system it comes
 * from, so one the policy refuses as weak (too short or long, common, built on the user's or the service's
 * name) is still imported, and the account is flagged "must change password": its logins can do nothing
 * but change it (docs/PROTOCOL.md, section 6). The password itself is never stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLegacyAccount } from "./create_account.ts";
 * import { SqliteUserStore } from "./sqlite_user_store.ts";
 * const store = SqliteUserStore.open(":memory:");
 * const { record, weakness } = await createLegacyAccount(store, { user: "user10", password: "password10" }, {
 *   iterations: 4096,
 *   minPasswordLength: 10,
 * });
 * assert(record.mustChangePassword && weakness?.details.reason === "common");
 * store.close();
 * ```
 *
 * @param store The store.
 * @param credentials Name and password as found in the file.
 * @param settings Iterations and policy.
 * @returns The stored account, and why it must change its password if it must.
 * @throws {ProtocolError} `INVALID_USERNAME` (the rules of new names); `PASSWORD_POLICY` for an empty
 *   password or one SASLprep refuses (`prohibited_character`); `USER_EXISTS` (`reason: "confusable"` for a
 *   look-alike of an account's name).
 */
export async function createLegacyAccount(
  store: UserStore,
  credentials: { user: string; password: string },
  settings: AccountSettings,
): Promise<LegacyAccount> {
  const { name, key } = prepareNewUsername(credentials.user);
  let password: string;
  let weakness: ProtocolError | null = null;
  try {
    password = await checkPassword(credentials.password, {
      minLength: settings.minPasswordLength,
      username: name,
    });
  } catch (err) {
    if (!(err instanceof ProtocolError) || !WEAK_REASONS.has(err.details.reason as PolicyReason)) throw err;
    // The policy got past SASLprep before it refused, so this does not throw.
    password = saslPrep(credentials.password, { allowUnassigned: true });
    weakness = err;
  }
  // Nothing to prove at a login (or only characters SASLprep maps to nothing): not a password at all.
  if (password === "") {
    throw new ProtocolError("PASSWORD_POLICY", "Password refused: it is empty", { reason: "too_short" });
  }
  const record = await derive(
    store,
    { name, key },
    password,
    { mustChangePassword: weakness !== null },
    settings,
  );
  return { record, weakness };
}

/**
 * Store a new account with a verifier made elsewhere (already checked).
 *
 * @param store The store.
 * @param account Name as asked for, verifier text, and the identity key the client registers, if any.
 * @param now Creation time (default now).
 * @returns The stored account.
 * @throws {ProtocolError} `INVALID_USERNAME` (the rules of new names) or `USER_EXISTS` (`reason:
 *   "confusable"` for a look-alike of an account's name).
 */
export async function addAccount(
  store: UserStore,
  account: { user: string; verifier: string; identity?: IdentityRecord | undefined },
  now: number = Date.now(),
): Promise<UserRecord> {
  const { name, key } = prepareNewUsername(account.user);
  await refuseTaken(store, key, name);
  return await insert(store, { name, key }, account, now);
}

/** The verifier of a checked, prepared password, and the insert, once the name is found free. */
async function derive(
  store: UserStore,
  { name, key }: { name: string; key: string },
  password: string,
  account: { identity?: IdentityRecord | undefined; mustChangePassword?: boolean },
  settings: AccountSettings,
): Promise<UserRecord> {
  // Checked before the costly key derivation; the store's transaction still settles races.
  await refuseTaken(store, key, name);
  const verifier = formatVerifier(await createVerifier(password, { iterations: settings.iterations }));
  return await insert(store, { name, key }, { ...account, verifier }, settings.now);
}

/** The insert itself, the name prepared and found free (the store's transaction still settles races). */
function insert(
  store: UserStore,
  { name, key }: { name: string; key: string },
  account: { verifier: string; identity?: IdentityRecord | undefined; mustChangePassword?: boolean },
  now: number = Date.now(),
): Promise<UserRecord> {
  return store.createUser({
    name,
    nameKey: key,
    verifier: account.verifier,
    now,
    ...(account.identity ? { identity: account.identity } : {}),
    ...(account.mustChangePassword ? { mustChangePassword: true } : {}),
  });
}

/** Refuse a name that is taken or looks like a taken one (before costly work; the store decides). */
async function refuseTaken(store: UserStore, key: string, name: string): Promise<void> {
  if (await store.findUser(key)) throw nameTaken(name);
  if (await store.hasLookAlike(name, key)) throw nameLooksTaken(name);
}
