/**
 * Creating an account: from a name and a password on the server's side
 * (`seed --user`, `seed --demo` and legacy imports), or from a name and the
 * verifier a client computed (REGISTER: the password never reaches the server).
 *
 * @module
 */

import { checkPassword } from "../auth/password_policy.ts";
import { prepareUsername } from "../auth/username.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { createVerifier, formatVerifier } from "../crypto/scram_verifier.ts";
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
 * @throws {ProtocolError} `INVALID_USERNAME`, `PASSWORD_POLICY` or `USER_EXISTS`.
 */
export async function createAccount(
  store: UserStore,
  credentials: { user: string; password: string; identity?: IdentityRecord | undefined },
  settings: AccountSettings,
): Promise<UserRecord> {
  const { name, key } = prepareUsername(credentials.user);
  const password = await checkPassword(credentials.password, {
    minLength: settings.minPasswordLength,
    username: name,
  });
  // Checked before the costly key derivation; the store's unique index still settles races.
  await refuseTaken(store, key, name);
  const verifier = formatVerifier(await createVerifier(password, { iterations: settings.iterations }));
  return await insert(store, { name, key }, { verifier, identity: credentials.identity }, settings.now);
}

/**
 * Store a new account with a verifier made elsewhere (already checked).
 *
 * @param store The store.
 * @param account Name as asked for, verifier text, and the identity key the client registers, if any.
 * @param now Creation time (default now).
 * @returns The stored account.
 * @throws {ProtocolError} `INVALID_USERNAME` or `USER_EXISTS`.
 */
export async function addAccount(
  store: UserStore,
  account: { user: string; verifier: string; identity?: IdentityRecord | undefined },
  now: number = Date.now(),
): Promise<UserRecord> {
  const { name, key } = prepareUsername(account.user);
  await refuseTaken(store, key, name);
  return await insert(store, { name, key }, account, now);
}

/** The insert itself, the name prepared and found free (the store's unique index still settles races). */
function insert(
  store: UserStore,
  { name, key }: { name: string; key: string },
  account: { verifier: string; identity?: IdentityRecord | undefined },
  now: number = Date.now(),
): Promise<UserRecord> {
  return store.createUser({
    name,
    nameKey: key,
    verifier: account.verifier,
    now,
    ...(account.identity ? { identity: account.identity } : {}),
  });
}

async function refuseTaken(store: UserStore, key: string, name: string): Promise<void> {
  if (await store.findUser(key)) throw new ProtocolError("USER_EXISTS", `User already exists: ${name}`);
}
