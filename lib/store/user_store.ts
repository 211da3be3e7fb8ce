/**
 * The account store interface. SQLite is the embedded implementation; the
 * interface is asynchronous so a networked database can stand in.
 *
 * @module
 */

/** One account as stored. */
export interface UserRecord {
  /** Row id. */
  id: number;
  /** SASLprepped name as chosen. */
  name: string;
  /** Lower-cased name, unique. */
  nameKey: string;
  /** PostgreSQL-format SCRAM-SHA-256 verifier. */
  verifier: string;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** Time of the latest successful login, if any. */
  lastLoginAt: number | null;
  /** The user's Ed25519 identity public key (32 raw bytes), once registered. */
  identityKey: Uint8Array<ArrayBuffer> | null;
  /** The identity private key sealed under the user's password (JSON text), never the key itself. */
  keyBackup: string | null;
  /**
   * The account was imported with a password the policy refuses: its logins are restricted to changing
   * it. Set only at creation; a successful password change clears it, so it always belongs to the
   * verifier it was read with.
   */
  mustChangePassword: boolean;
}

/** An identity public key with its sealed private-key backup. */
export interface IdentityRecord {
  /** Ed25519 public key, 32 raw bytes. */
  key: Uint8Array;
  /** The sealed backup, JSON text. */
  backup: string;
}

/**
 * What a SCRAM exchange needs of an account before the proof, read the same way whether or not the name
 * has an account (see {@linkcode UserStore.findCredentials}).
 */
export interface Credentials {
  /** Whether an account has the name; when `false`, the other fields are placeholders and the decoy. */
  found: boolean;
  /** Row id (`0` when not found). */
  id: number;
  /** SASLprepped name as chosen (the lower-cased name asked for, when not found). */
  name: string;
  /** The account's PostgreSQL-format verifier, or the decoy given. */
  verifier: string;
  /** The account must change its password (`false` when not found). */
  mustChangePassword: boolean;
}

/** What a successful login reads as it is recorded. */
export interface LoginRecord {
  /** The previous login time, `null` for a first login. */
  previous: number | null;
  /** The account's identity key and sealed backup, as they are when the login is recorded. */
  identity: IdentityRecord | null;
}

/** An account's key and current verifier, as the re-check of logged-in sessions reads them. */
export interface AccountVerifier {
  /** Lower-cased name. */
  nameKey: string;
  /** PostgreSQL-format SCRAM-SHA-256 verifier. */
  verifier: string;
}

/** What a new account needs. */
export interface NewUser {
  /** SASLprepped name. */
  name: string;
  /** Lower-cased name. */
  nameKey: string;
  /** Verifier string. */
  verifier: string;
  /** Creation time. */
  now: number;
  /** Identity key and sealed backup, when the client registered one. */
  identity?: IdentityRecord;
  /** Restrict the account's logins to changing its password (default `false`). */
  mustChangePassword?: boolean;
}

/**
 * Persistent accounts. Every write is one transaction (login times may be
 * written behind, many in one, a moment later). Writes that follow a SCRAM
 * proof name the verifier the proof was checked against and do nothing when it
 * has changed meanwhile (compare-and-swap), so a proof of an old password can
 * never commit after the password changed.
 */
export interface UserStore {
  /**
   * Find an account by its lower-cased name.
   *
   * @param nameKey Lower-cased name.
   * @returns The account, or `undefined`.
   */
  findUser(nameKey: string): Promise<UserRecord | undefined>;
  /**
   * Whether an account's name looks like this one: the same look-alike key in any case or as shown
   * (`nameSkeletons`, lib/auth/confusable_skeleton.ts). A check before costly work; {@linkcode UserStore.createUser} decides.
   *
   * @param name The name as it would be stored.
   * @param nameKey Its lower-cased key.
   * @returns `true` when an account (the same name in any case included) looks like it.
   */
  hasLookAlike(name: string, nameKey: string): Promise<boolean>;
  /**
   * Read what a SCRAM exchange needs of an account, doing the same work whether or not the name has one:
   * one lookup that yields one row of the same shape either way, the decoy standing in for the verifier of
   * a name nobody has. The time this takes must not tell the two apart (docs/BENCHMARKS.md,
   * `login_known_unknown_z`): an implementation must not return early, read more, or convert more for
   * an account than for an unknown name. Identity keys are not read here: whether an account has one
   * would show in the time.
   *
   * @param nameKey Lower-cased name.
   * @param decoy The verifier text to return when no account has the name (the mock verifier, formatted).
   * @returns The account's credentials, or the decoy's with `found: false`.
   */
  findCredentials(nameKey: string, decoy: string): Promise<Credentials>;
  /**
   * Create an account, unless its name is taken or looks like an account's name: the check and the
   * insert are atomic, so of two look-alike names created at once only one is. (Accounts older than the
   * look-alike rule may look alike; they are left as they are.)
   *
   * @param user The new account.
   * @returns The stored record.
   * @throws {ProtocolError} `USER_EXISTS` when the name is taken (in any case), and with `reason`
   *   `confusable` when it looks like an account's name.
   */
  createUser(user: NewUser): Promise<UserRecord>;
  /**
   * Replace an account's verifier if it is still `expected`, with the key backup re-sealed under the new
   * password in the same transaction; the account's must-change-password flag is cleared in that write.
   *
   * @param id Row id.
   * @param expected The verifier the caller checked a proof against.
   * @param verifier New verifier.
   * @param keyBackup The re-sealed backup. Without one, only an account that has no identity key is
   *   updated (a key registered meanwhile would stay sealed under the old password).
   * @returns Whether the account existed with the expected verifier (and was updated).
   */
  updateVerifier(id: number, expected: string, verifier: string, keyBackup?: string): Promise<boolean>;
  /**
   * Register the identity key of an account that has none, if its verifier is still `expected` (the
   * backup is sealed under the password the caller logged in with).
   *
   * @param id Row id.
   * @param expected The verifier the caller's login was checked against.
   * @param identity Public key and sealed backup.
   * @returns Whether it was stored (`false`: the account is gone, changed its password, or has a key).
   */
  setIdentity(id: number, expected: string, identity: IdentityRecord): Promise<boolean>;
  /**
   * Delete an account if its verifier is still `expected`.
   *
   * @param id Row id.
   * @param expected The verifier the caller checked a proof against.
   * @returns Whether the account existed with the expected verifier (and was deleted).
   */
  deleteUser(id: number, expected: string): Promise<boolean>;
  /**
   * Record a successful login if the verifier is still `expected`, and read, in the same step, the
   * previous login time and the account's identity key.
   *
   * @param id Row id.
   * @param expected The verifier the proof was checked against.
   * @param now Login time.
   * @returns The previous login time (`null` for a first login) and the identity key with its backup;
   *   `undefined` when the account is gone or its verifier changed.
   */
  recordLogin(id: number, expected: string, now: number): Promise<LoginRecord | undefined>;
  /**
   * Read the current verifiers of many accounts in one query: every node re-checks its logged-in sessions
   * with it, a batch at a time (lib/server/session_recheck.ts).
   *
   * @param ids Row ids (a few thousand at most at once; repeats allowed).
   * @returns By row id, the key and verifier of each account that exists; an id without one is absent.
   */
  verifiersOf(ids: readonly number[]): Promise<Map<number, AccountVerifier>>;
  /** How many accounts use each PBKDF2 iteration count. */
  iterationCounts(): Promise<Map<number, number>>;
  /** The server secret that mock exchanges for unknown users derive from. */
  mockSecret(): Promise<Uint8Array<ArrayBuffer>>;
  /** Number of accounts. */
  countUsers(): Promise<number>;
  /**
   * Check cheaply that the store answers (the server's `/healthz` asks; without it, {@linkcode UserStore.countUsers}
   * is asked instead).
   *
   * @throws {Error} Saying what is wrong: closed, unreachable, not the database it opened.
   */
  ping?(): Promise<void>;
  /**
   * Close the store, writing what it holds back (login times); later calls fail. A networked store
   * finishes closing when the returned promise settles; the embedded one at once.
   */
  close(): void | Promise<void>;
}
