/**
 * Who is online, and a notice to every logged-in session when that changes.
 * The server talks to presence only through {@linkcode PresenceDirectory}, so
 * a message bus can stand in for the in-process {@linkcode LocalPresence}
 * when several nodes share the users.
 *
 * @module
 */

import type { ServerMessageOf } from "../codec/messages.ts";
import { encodeBase64 } from "../codec/base64.ts";
import { PresenceCoalescer } from "./presence_coalescer.ts";
import type { CoalescerClock } from "./presence_coalescer.ts";

/** A user as presence shows them. */
export interface OnlineUser {
  /** Lower-cased name. */
  key: string;
  /** Name as stored. */
  name: string;
  /** Ed25519 identity public key, if the account has one. */
  identityKey: Uint8Array | null;
  /** Its fingerprint. */
  fingerprint: string | null;
}

/** A logged-in session as presence sees it. */
export interface PresenceMember {
  /** Unique session id. */
  readonly id: number;
  /**
   * Push a notice to the session's client.
   *
   * @param message The notice.
   */
  notify(message: ServerMessageOf<"PRESENCE">): void;
}

/** The directory of online users. */
export interface PresenceDirectory {
  /**
   * A session logged in; the user comes online with their first session.
   *
   * @param member The session.
   * @param user The account.
   */
  join(member: PresenceMember, user: OnlineUser): void;
  /**
   * A session logged out or ended; the user goes offline with their last session.
   *
   * @param member The session.
   * @param userKey The account's lower-cased name.
   * @param linger A clean exit (LOGOUT, CLOSE, a re-login): the user goes offline only if no session of
   *   theirs logs in within the linger time, so a reconnect does not flap everyone's presence.
   */
  leave(member: PresenceMember, userKey: string, linger?: boolean): void;
  /**
   * An online user's identity key was registered: everyone is told again, with the key.
   *
   * @param user The account, with its key.
   */
  update(user: OnlineUser): void;
  /**
   * One page of the online users, sorted by lower-cased name.
   *
   * @param after Only names sorting after this key.
   * @param limit Page size.
   * @returns The users, and the cursor of the next page when there is one.
   */
  list(after: string | undefined, limit: number): { users: OnlineUser[]; next?: string };
  /**
   * An online user.
   *
   * @param userKey Lower-cased name.
   * @returns The user, or `undefined` when offline.
   */
  get(userKey: string): OnlineUser | undefined;
  /** The server is shutting down: every session is about to end, so nobody is told about it. */
  quiet(): void;
}

/**
 * The presence notice about a user.
 *
 * @param user The user.
 * @param state Online or offline.
 * @returns The message.
 */
export function presenceNotice(user: OnlineUser, state: "online" | "offline"): ServerMessageOf<"PRESENCE"> {
  const notice: ServerMessageOf<"PRESENCE"> = { op: "PRESENCE", user: user.name, state };
  if (state === "online" && user.identityKey && user.fingerprint) {
    notice.key = encodeBase64(user.identityKey);
    notice.fingerprint = user.fingerprint;
  }
  return notice;
}

/**
 * One page of sorted keys, as {@linkcode PresenceDirectory.list} pages them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pageOf } from "./presence.ts";
 * assert.deepEqual(pageOf(["a", "b", "c"], "a", 1), { keys: ["b"], next: "b" });
 * assert.deepEqual(pageOf(["a", "b", "c"], "b", 5), { keys: ["c"] });
 * ```
 *
 * @param sorted Every key, sorted.
 * @param after Only keys sorting after this one.
 * @param limit Page size.
 * @returns The page's keys, and the cursor of the next page when there is one.
 */
export function pageOf(sorted: readonly string[], after: string | undefined, limit: number): {
  keys: string[];
  next?: string;
} {
  let start = 0;
  if (after !== undefined) {
    // First key sorting after the cursor (binary search).
    let hi = sorted.length;
    while (start < hi) {
      const mid = (start + hi) >> 1;
      if (sorted[mid]! <= after) start = mid + 1;
      else hi = mid;
    }
  }
  const keys = sorted.slice(start, start + limit);
  return start + limit < sorted.length ? { keys, next: keys[keys.length - 1]! } : { keys };
}

/** Options of {@linkcode LocalPresence}. */
export interface LocalPresenceOptions {
  /** How long a user whose last session left cleanly stays online, in ms (default 0: not at all). */
  lingerMs?: number;
  /**
   * Least time between two notices about one user, in ms (default 0: every change at once); see
   * {@linkcode PresenceCoalescer}. The server uses `DEFAULT_NOTICE_INTERVAL_MS`.
   */
  noticeIntervalMs?: number;
  /** Clock and timers of the coalescing (default: the process's). */
  clock?: CoalescerClock;
}

/**
 * In-process presence. Notices about a user are coalesced: the others hear of them at most once per
 * `noticeIntervalMs`, and always of their latest state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalPresence } from "./presence.ts";
 * const presence = new LocalPresence();
 * const seen: string[] = [];
 * const bob = { id: 2, notify: (m: { user: string; state: string }) => seen.push(`${m.user} ${m.state}`) };
 * presence.join(bob, { key: "bob", name: "bob", identityKey: null, fingerprint: null });
 * presence.join({ id: 1, notify() {} }, { key: "alice", name: "Alice", identityKey: null, fingerprint: null });
 * assert(seen[0] === "Alice online");
 * assert(presence.list(undefined, 10).users.length === 2);
 * ```
 */
export class LocalPresence implements PresenceDirectory {
  #users = new Map<string, { user: OnlineUser; sessions: Set<PresenceMember> }>();
  #members = new Map<PresenceMember, string>();
  #sorted: string[] | null = null;
  #quiet = false;
  #lingerMs: number;
  /** Users whose last session left cleanly, until they go offline. */
  #lingering = new Map<string, ReturnType<typeof setTimeout>>();
  #coalescer: PresenceCoalescer;

  /**
   * Make the directory.
   *
   * @param options Linger time and notice interval.
   */
  constructor(options: LocalPresenceOptions = {}) {
    this.#lingerMs = options.lingerMs ?? 0;
    this.#coalescer = new PresenceCoalescer((key, notice) => this.#fanOut(key, notice), {
      intervalMs: options.noticeIntervalMs ?? 0,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }

  join(member: PresenceMember, user: OnlineUser): void {
    if (this.#members.has(member)) this.leave(member, this.#members.get(member)!);
    this.#members.set(member, user.key);
    this.#coalescer.observerJoined();
    const entry = this.#users.get(user.key);
    if (entry) {
      // Back within the linger time: nobody was told they left, so nobody is told they came back.
      clearTimeout(this.#lingering.get(user.key));
      this.#lingering.delete(user.key);
      entry.user = user;
      entry.sessions.add(member);
      return;
    }
    this.#users.set(user.key, { user, sessions: new Set([member]) });
    this.#sorted = null;
    this.#broadcast(user, "online");
  }

  leave(member: PresenceMember, userKey: string, linger = false): void {
    if (this.#members.get(member) !== userKey) return;
    this.#members.delete(member);
    const entry = this.#users.get(userKey);
    if (!entry) return;
    entry.sessions.delete(member);
    if (entry.sessions.size > 0 || this.#lingering.has(userKey)) return;
    if (linger && this.#lingerMs > 0 && !this.#quiet) {
      this.#lingering.set(userKey, setTimeout(() => this.#gone(userKey), this.#lingerMs));
      return;
    }
    this.#gone(userKey);
  }

  /** The user has no session left: offline, and everyone is told. */
  #gone(userKey: string): void {
    this.#lingering.delete(userKey);
    const entry = this.#users.get(userKey);
    if (!entry || entry.sessions.size > 0) return;
    this.#users.delete(userKey);
    this.#sorted = null;
    this.#broadcast(entry.user, "offline");
  }

  update(user: OnlineUser): void {
    const entry = this.#users.get(user.key);
    if (!entry) return;
    entry.user = user;
    this.#broadcast(user, "online");
  }

  list(after: string | undefined, limit: number): { users: OnlineUser[]; next?: string } {
    this.#sorted ??= [...this.#users.keys()].sort();
    const { keys, next } = pageOf(this.#sorted, after, limit);
    const users = keys.map((k) => this.#users.get(k)!.user);
    return next === undefined ? { users } : { users, next };
  }

  get(userKey: string): OnlineUser | undefined {
    return this.#users.get(userKey)?.user;
  }

  quiet(): void {
    // Without this, ending N sessions one by one would send every remaining one a notice: N² messages.
    this.#quiet = true;
    for (const timer of this.#lingering.values()) clearTimeout(timer);
    this.#lingering.clear();
    this.#coalescer.close();
  }

  /** Tell every session of the other users, through the coalescer. */
  #broadcast(user: OnlineUser, state: "online" | "offline"): void {
    if (this.#quiet) return;
    this.#coalescer.publish(user.key, presenceNotice(user, state));
  }

  /** Deliver a notice to every session of the other users online now. */
  #fanOut(userKey: string, notice: ServerMessageOf<"PRESENCE">): void {
    if (this.#quiet) return;
    for (const [member, key] of this.#members) if (key !== userKey) member.notify(notice);
  }
}
