/**
 * The store and the presence directory, counted: each wraps the part it is
 * given and counts into the server's metrics what only that part sees — the
 * errors the database raises, the presence notices sent to sessions — whatever
 * implementation stands behind it (SQLite or PostgreSQL, in-process presence
 * or a bus's). The composition root wraps the parts it hands the server; the
 * server does not know.
 *
 * @module
 */

import type { ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type {
  AccountVerifier,
  Credentials,
  IdentityRecord,
  LoginRecord,
  NewUser,
  UserRecord,
  UserStore,
} from "../store/user_store.ts";
import type { Counters } from "./metrics.ts";
import type { OnlineUser, PresenceDirectory, PresenceMember } from "./presence.ts";

/** The counter of database errors, labelled `op` (the store method that failed). */
export const DATABASE_ERRORS = "authchat_database_errors_total";

/** The counter of presence notices sent to sessions, labelled `state` (`online` or `offline`). */
export const PRESENCE_NOTICES = "authchat_presence_notices_total";

/**
 * Whether a store's failure is the database's: anything but a refusal the store makes on purpose (a
 * `ProtocolError` such as `USER_EXISTS`), except the codes that say the database did not answer.
 */
function isDatabaseError(err: unknown): boolean {
  return !(err instanceof ProtocolError) || err.code === "UNAVAILABLE" || err.code === "INTERNAL";
}

/**
 * A store that counts its database errors into {@linkcode DATABASE_ERRORS} and passes everything through
 * unchanged (a refusal such as `USER_EXISTS` is not counted).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countStoreErrors, DATABASE_ERRORS } from "./counted_parts.ts";
 * import { Metrics } from "./metrics.ts";
 * import { SqliteUserStore } from "../store/sqlite_user_store.ts";
 * const metrics = new Metrics().counter(DATABASE_ERRORS, "Database errors.", { labels: ["op"] });
 * const store = countStoreErrors(SqliteUserStore.open(":memory:"), metrics);
 * store.close();
 * await assert.rejects(store.countUsers());
 * assert(metrics.value(DATABASE_ERRORS, { op: "countUsers" }) === 1);
 * ```
 *
 * @param store The store.
 * @param counters Where to count.
 * @returns The counted store; closing it closes `store`. Its `ping` is the store's, or a count of the
 *   accounts when the store has none.
 */
export function countStoreErrors(store: UserStore, counters: Counters): UserStore {
  return new CountedStore(store, counters);
}

class CountedStore implements UserStore {
  #store: UserStore;
  #counters: Counters;

  constructor(store: UserStore, counters: Counters) {
    this.#store = store;
    this.#counters = counters;
  }

  /** Run one call, counting its failure, thrown or rejected (a throw becomes a rejection). */
  #call<T>(op: string, call: () => Promise<T>): Promise<T> {
    let result: Promise<T>;
    try {
      result = call();
    } catch (err) {
      result = Promise.reject(err);
    }
    return result.catch((err) => {
      this.#failed(op, err);
      throw err;
    });
  }

  #failed(op: string, err: unknown): void {
    if (isDatabaseError(err)) this.#counters.inc(DATABASE_ERRORS, { op });
  }

  findUser(nameKey: string): Promise<UserRecord | undefined> {
    return this.#call("findUser", () => this.#store.findUser(nameKey));
  }
  hasLookAlike(name: string, nameKey: string): Promise<boolean> {
    return this.#call("hasLookAlike", () => this.#store.hasLookAlike(name, nameKey));
  }
  findCredentials(nameKey: string, decoy: string): Promise<Credentials> {
    return this.#call("findCredentials", () => this.#store.findCredentials(nameKey, decoy));
  }
  createUser(user: NewUser): Promise<UserRecord> {
    return this.#call("createUser", () => this.#store.createUser(user));
  }
  updateVerifier(id: number, expected: string, verifier: string, keyBackup?: string): Promise<boolean> {
    return this.#call("updateVerifier", () => this.#store.updateVerifier(id, expected, verifier, keyBackup));
  }
  setIdentity(id: number, expected: string, identity: IdentityRecord): Promise<boolean> {
    return this.#call("setIdentity", () => this.#store.setIdentity(id, expected, identity));
  }
  deleteUser(id: number, expected: string): Promise<boolean> {
    return this.#call("deleteUser", () => this.#store.deleteUser(id, expected));
  }
  recordLogin(id: number, expected: string, now: number): Promise<LoginRecord | undefined> {
    return this.#call("recordLogin", () => this.#store.recordLogin(id, expected, now));
  }
  verifiersOf(ids: readonly number[]): Promise<Map<number, AccountVerifier>> {
    return this.#call("verifiersOf", () => this.#store.verifiersOf(ids));
  }
  iterationCounts(): Promise<Map<number, number>> {
    return this.#call("iterationCounts", () => this.#store.iterationCounts());
  }
  mockSecret(): Promise<Uint8Array<ArrayBuffer>> {
    return this.#call("mockSecret", () => this.#store.mockSecret());
  }
  countUsers(): Promise<number> {
    return this.#call("countUsers", () => this.#store.countUsers());
  }
  /** The store's own check, or counting its accounts when it has none. */
  ping(): Promise<void> {
    return this.#call("ping", () => this.#store.ping?.() ?? this.#store.countUsers().then(() => {}));
  }
  /** Close the store behind it; settles when it has (a networked store writes what it holds back first). */
  close(): void | Promise<void> {
    return this.#store.close();
  }
}

/**
 * A presence directory that counts the notices it delivers to sessions into {@linkcode PRESENCE_NOTICES}
 * (one per session told), by state. Each session is stood in for by one counting member, the same at its
 * join and its leave, so the directory behind it sees a member as the same object throughout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countPresenceNotices, PRESENCE_NOTICES } from "./counted_parts.ts";
 * import { Metrics } from "./metrics.ts";
 * import { LocalPresence } from "./presence.ts";
 * const metrics = new Metrics().counter(PRESENCE_NOTICES, "Notices.", { labels: ["state"] });
 * const presence = countPresenceNotices(new LocalPresence(), metrics);
 * const user = (key: string) => ({ key, name: key, identityKey: null, fingerprint: null });
 * presence.join({ id: 1, notify() {} }, user("alice"));
 * presence.join({ id: 2, notify() {} }, user("bob"));
 * assert(metrics.value(PRESENCE_NOTICES, { state: "online" }) === 1);
 * ```
 *
 * @param presence The directory.
 * @param counters Where to count.
 * @returns The counted directory.
 */
export function countPresenceNotices(presence: PresenceDirectory, counters: Counters): PresenceDirectory {
  return new CountedPresence(presence, counters);
}

class CountedPresence implements PresenceDirectory {
  #presence: PresenceDirectory;
  #counters: Counters;
  #members = new WeakMap<PresenceMember, PresenceMember>();

  constructor(presence: PresenceDirectory, counters: Counters) {
    this.#presence = presence;
    this.#counters = counters;
  }

  #member(member: PresenceMember): PresenceMember {
    let counted = this.#members.get(member);
    if (!counted) {
      const counters = this.#counters;
      counted = {
        id: member.id,
        notify(message: ServerMessageOf<"PRESENCE">): void {
          counters.inc(PRESENCE_NOTICES, { state: message.state });
          member.notify(message);
        },
      };
      this.#members.set(member, counted);
    }
    return counted;
  }

  join(member: PresenceMember, user: OnlineUser): void {
    this.#presence.join(this.#member(member), user);
  }
  leave(member: PresenceMember, userKey: string, linger?: boolean): void {
    this.#presence.leave(this.#member(member), userKey, linger);
  }
  update(user: OnlineUser): void {
    this.#presence.update(user);
  }
  list(after: string | undefined, limit: number): { users: OnlineUser[]; next?: string } {
    return this.#presence.list(after, limit);
  }
  get(userKey: string): OnlineUser | undefined {
    return this.#presence.get(userKey);
  }
  quiet(): void {
    this.#presence.quiet();
  }
}
