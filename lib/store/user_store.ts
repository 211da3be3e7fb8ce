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
}

/**
 * Persistent accounts. Every write is one transaction. Writes that follow a
 * SCRAM proof name the verifier the proof was checked against and do nothing
 * when it has changed meanwhile (compare-and-swap), so a proof of an old
 * password can never commit after the password changed.
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
   * Create an account.
   *
   * @param user The new account.
   * @returns The stored record.
   * @throws {ProtocolError} `USER_EXISTS` when the name is taken (in any case).
   */
  createUser(user: NewUser): Promise<UserRecord>;
  /**
   * Replace an account's verifier if it is still `expected`.
   *
   * @param id Row id.
   * @param expected The verifier the caller checked a proof against.
   * @param verifier New verifier.
   * @returns Whether the account existed with the expected verifier (and was updated).
   */
  updateVerifier(id: number, expected: string, verifier: string): Promise<boolean>;
  /**
   * Delete an account if its verifier is still `expected`.
   *
   * @param id Row id.
   * @param expected The verifier the caller checked a proof against.
   * @returns Whether the account existed with the expected verifier (and was deleted).
   */
  deleteUser(id: number, expected: string): Promise<boolean>;
  /**
   * Record a successful login if the verifier is still `expected`.
   *
   * @param id Row id.
   * @param expected The verifier the proof was checked against.
   * @param now Login time.
   * @returns The previous login time, `null` for a first login, `undefined` when the account is gone or
   *   its verifier changed.
   */
  recordLogin(id: number, expected: string, now: number): Promise<number | null | undefined>;
  /** How many accounts use each PBKDF2 iteration count. */
  iterationCounts(): Promise<Map<number, number>>;
  /** The server secret that mock exchanges for unknown users derive from. */
  mockSecret(): Promise<Uint8Array<ArrayBuffer>>;
  /** Number of accounts. */
  countUsers(): Promise<number>;
  /** Close the store; later calls fail. */
  close(): void;
}
