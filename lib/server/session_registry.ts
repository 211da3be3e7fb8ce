/**
 * The live sessions of one server: which user each is logged in as, how many
 * connections each source address holds before logging in, and a way to end
 * sessions from elsewhere (account deleted, password changed, shutdown).
 *
 * It also decides who gets in under pressure (docs/PROTOCOL.md section 8). A
 * connection not logged in is shed to make room rather than the newcomer
 * refused: first those that have shown no device token, then those that
 * have. A logged-in session is never shed. A token puts one connection ahead,
 * not many: of the connections that hold a token of one account, only the one
 * that got it last counts as holding it, so whoever has an account of their
 * own cannot show its token on every connection of a flood to keep them all
 * ahead of a client that has none yet (a new user, a new device).
 *
 * - At a cap of its address (connections not logged in, or all), the oldest
 *   such connection of that address is shed (`BYE TOO_MANY_CONNECTIONS`), so
 *   idle connections from an address cannot lock out everyone behind it; only
 *   when every connection of the address is logged in is the newcomer refused.
 * - At the server's cap on connections (one descriptor each), one of the
 *   source address (IPv6: /48) holding the most such connections is shed, its
 *   oldest (`BYE SERVER_FULL`; why by address: _shed_queue.ts); when every
 *   connection is logged in, the newcomer is refused.
 *
 * Oldest: not logged in for the longest, counting from its connect or its last
 * logout.
 *
 * @module
 */

import { adjustCount, sourceKey } from "../auth/rate_limiter.ts";
import type { ByeCode } from "../codec/messages.ts";
import { shedGroup, ShedQueue } from "./_shed_queue.ts";

/** What the registry needs from a session. */
export interface RegisteredSession {
  /** Unique id. */
  readonly id: number;
  /** Source IP address. */
  readonly peerAddress: string;
  /** The transport it came over (`tcp`, `tls`, `udp`), for {@linkcode SessionRegistry.census}. */
  readonly transport?: string;
  /**
   * The account it is logged in to, as it logged in (the verifier its own PASSWD set, if any), for the
   * re-check of sessions (session_recheck.ts); `null` or absent when not logged in.
   */
  readonly account?: Readonly<{ id: number; verifier: string }> | null;
  /** End the session: send BYE and close. */
  end(code: ByeCode, reason: string): void;
}

/** Options of {@linkcode SessionRegistry}. */
export interface SessionRegistryOptions {
  /** Most connections not logged in per source address (IPv6: /64). */
  maxUnauthenticatedPerIp: number;
  /** Most connections per source address. */
  maxConnectionsPerIp: number;
  /** Most connections in all, sessions and held slots (default: no cap). */
  maxConnections?: number;
  /** A monotonic clock in ms, for how long ended users are remembered (default `performance.now`). */
  now?: () => number;
}

/**
 * How long the registry remembers that a user's sessions were ended, ms: a login under way for longer
 * than this (from its proof to its reply) is refused as if its user's sessions had been ended meanwhile.
 */
export const ENDED_MEMORY_MS = 120_000;

/** Why a login begun at a {@linkcode SessionRegistry.mark} must not complete (see `endedSince`). */
export type EndedSince = "user" | "all" | null;

/** The BYE code of a connection shed to make room at the server's cap. */
export const SHED_CODE: ByeCode = "SERVER_FULL";

/** The BYE reason of a connection shed to make room at the server's cap. */
export const SHED_REASON = "Server full: this connection, not logged in, made room for a newer one; " +
  "connect again and log in sooner";

/** Why a connection is refused: which cap, and the message for the peer. */
export interface Refusal {
  /** `address`: a cap of its source address; `server`: the cap in all. Either way all are logged in. */
  cap: "address" | "server";
  /** The message of the `TOO_MANY_CONNECTIONS` error. */
  message: string;
}

/**
 * A live session. It is also what the shed queues hold while it is not logged in: the registry itself
 * tells whether it is ahead for a token and sheds it, so a session costs no closures of its own (the
 * registry holds thousands of logged-in sessions, each for as long as it stays connected).
 */
interface Entry {
  session: RegisteredSession;
  user: string | null;
  /** The account whose valid device token the session holds, if any. */
  tokenOf: string | null;
}

/** A TLS handshake under way, in the shed queues: it never holds a token; `shed` releases and closes it. */
interface Handshake {
  shed: (code: ByeCode) => void;
}

/** A connection not logged in: a session, or a TLS handshake under way. */
type Waiting = Entry | Handshake;

function isEntry(waiting: Waiting): waiting is Entry {
  return "session" in waiting;
}

/**
 * Tracks live sessions.
 *
 * @example At a cap of its address, the oldest connection not logged in makes room
 * ```ts
 * import assert from "node:assert/strict";
 * import { SessionRegistry } from "./session_registry.ts";
 * const registry = new SessionRegistry({ maxUnauthenticatedPerIp: 1, maxConnectionsPerIp: 10 });
 * const ended: string[] = [];
 * const session = { id: 1, peerAddress: "10.0.0.1", end: (code: string) => void ended.push(code) };
 * registry.add(session);
 * assert(registry.admit("10.0.0.1") === null && ended[0] === "TOO_MANY_CONNECTIONS");
 * ```
 *
 * @example At the server's cap, likewise
 * ```ts
 * import assert from "node:assert/strict";
 * import { SessionRegistry } from "./session_registry.ts";
 * const registry = new SessionRegistry({ maxUnauthenticatedPerIp: 9, maxConnectionsPerIp: 9, maxConnections: 2 });
 * const ended: number[] = [];
 * const session = (id: number) => ({ id, peerAddress: "10.0.0.1", end: () => void ended.push(id) });
 * registry.add(session(1));
 * registry.add(session(2));
 * assert(registry.admit("10.0.0.2") === null && ended[0] === 1);
 * ```
 */
export class SessionRegistry {
  #maxAnonymous: number;
  #maxTotal: number;
  #maxConnections: number;
  #perSource = new Map<string, number>();
  #sessions = new Map<number, Entry>();
  #byUser = new Map<string, Set<RegisteredSession>>();
  /** Of the sessions holding a token of an account, the one that got it last: the only one it puts ahead. */
  #tokenHolder = new Map<string, Entry>();
  /**
   * Connections not logged in, by source, in the order they became so. Those found to be ahead for a
   * device token move to `#waitingWithToken` when the shedder comes to them, which keeps both in that order
   * and each shed O(1) on average; one that stops being ahead goes back at once ({@linkcode holdsToken}).
   */
  #waiting = new ShedQueue<Waiting>({ group: shedGroup });
  #waitingWithToken = new ShedQueue<Waiting>({ group: shedGroup });
  /** Slots held by connections without a session yet (TLS handshakes). */
  #held = 0;
  #now: () => number;
  /** How many times sessions were ended by user or all at once: the marks logins take. */
  #endings = 0;
  /** The latest ending of each user's sessions, oldest first, for {@linkcode ENDED_MEMORY_MS}. */
  #userEnded = new Map<string, { seq: number; at: number }>();
  /** The latest ending of every logged-in session (the node lost touch with the others). */
  #allEnded = 0;
  /** The latest ending forgotten (older than {@linkcode ENDED_MEMORY_MS}). */
  #forgotten = 0;

  /**
   * Make a registry.
   *
   * @param options Caps per source (on connections not logged in, and on all), and in all.
   */
  constructor(options: SessionRegistryOptions) {
    this.#maxAnonymous = options.maxUnauthenticatedPerIp;
    this.#maxTotal = options.maxConnectionsPerIp;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The cap on connections in all (`Infinity` when none). */
  get maxConnections(): number {
    return this.#maxConnections;
  }

  /** Connections counted against the cap: sessions and held slots (shed ones leave at once). */
  get connections(): number {
    return this.#sessions.size + this.#held;
  }

  /**
   * How many sessions there are now, by transport and whether they are logged in (a connection still in
   * its TLS handshake is no session yet: it counts in {@linkcode SessionRegistry.connections} only). One
   * pass over the sessions, for the metrics a scrape reads now and then.
   *
   * @returns One entry per transport and state that has sessions.
   */
  census(): { transport: string; loggedIn: boolean; count: number }[] {
    const counts = new Map<string, { transport: string; loggedIn: boolean; count: number }>();
    for (const { session, user } of this.#sessions.values()) {
      const transport = session.transport ?? "unknown";
      const key = `${transport} ${user !== null}`;
      const entry = counts.get(key);
      if (entry) entry.count++;
      else counts.set(key, { transport, loggedIn: user !== null, count: 1 });
    }
    return [...counts.values()];
  }

  /**
   * Let a new connection from this address in, or say why not. At a cap of the address its own oldest
   * connection not logged in is shed (`BYE TOO_MANY_CONNECTIONS`; one that showed no device token first);
   * then, at the cap in all, one of the address holding the most ({@linkcode SessionRegistry.shedOne}).
   * A cap where every connection is logged in refuses the newcomer.
   *
   * @param address Source IP.
   * @returns `null` when let in (room was made if needed), else why it is refused.
   */
  admit(address: string): Refusal | null {
    const key = sourceKey(address);
    while (this.#unauthenticatedOf(key) >= this.#maxAnonymous || this.#countOf(key) >= this.#maxTotal) {
      const victim = this.#victimOf(key);
      if (victim === undefined) {
        return {
          cap: "address",
          message: this.#countOf(key) >= this.#maxTotal
            ? `Too many connections from your address: ${this.#maxTotal} are open`
            : `Too many connections from your address that are not logged in: ${this.#maxAnonymous} are open`,
        };
      }
      this.#shed(
        victim,
        "TOO_MANY_CONNECTIONS",
        "Too many connections from your address that are not logged in: this one, the oldest, made room " +
          `for a new one (at most ${this.#maxAnonymous}, or ${this.#maxTotal} in all)`,
      );
    }
    if (this.connections < this.#maxConnections || this.shedOne()) return null;
    return {
      cap: "server",
      message: `Server full: all ${this.#maxConnections} connections are logged in; try again later`,
    };
  }

  /**
   * Shed a connection not logged in: of those that have shown no device token if there are any, else of
   * those that have, the oldest of the source address holding the most. It is ended with
   * `BYE SERVER_FULL` and stops counting at once.
   *
   * @returns Whether one was shed (none is when every connection is logged in).
   */
  shedOne(): boolean {
    const victim = this.#nextVictim();
    if (victim !== undefined) this.#shed(victim, SHED_CODE, SHED_REASON);
    return victim !== undefined;
  }

  /** Whether a connection not logged in is ahead for a device token (a handshake never is). */
  #showedToken(waiting: Waiting): boolean {
    return isEntry(waiting) && this.#aheadForToken(waiting);
  }

  /** Close a connection not logged in to make room; it leaves the counts at once. */
  #shed(waiting: Waiting, code: ByeCode, reason: string): void {
    if (!isEntry(waiting)) return waiting.shed(code);
    // The close that follows finds it gone.
    this.remove(waiting.session);
    waiting.session.end(code, reason);
  }

  /** The next victim in all: the first in `#waiting` that showed no token, else the first with one. */
  #nextVictim(): Waiting | undefined {
    for (let next; (next = this.#waiting.next()) !== undefined;) {
      const [key, waiting, source] = next;
      if (!this.#showedToken(waiting)) return waiting;
      this.#waiting.delete(key);
      this.#waitingWithToken.add(key, source, waiting);
    }
    return this.#waitingWithToken.next()?.[1];
  }

  /** The next victim of one source: its oldest that showed no token, else its oldest with one. */
  #victimOf(source: string): Waiting | undefined {
    for (const [key, waiting] of [...this.#waiting.entriesOf(source)]) {
      if (!this.#showedToken(waiting)) return waiting;
      this.#waiting.delete(key);
      this.#waitingWithToken.add(key, source, waiting);
    }
    return this.#waitingWithToken.entriesOf(source).next().value?.[1];
  }

  #unauthenticatedOf(source: string): number {
    return this.#waiting.sizeOf(source) + this.#waitingWithToken.sizeOf(source);
  }

  #countOf(source: string): number {
    return this.#perSource.get(source) ?? 0;
  }

  #queue(key: object, source: string, waiting: Waiting): void {
    this.#waiting.add(key, source, waiting);
  }

  #unqueue(key: object): void {
    this.#waiting.delete(key);
    this.#waitingWithToken.delete(key);
  }

  /**
   * Count a connection that has no session yet (a TLS handshake under way) as one not logged in, against
   * the caps per address and in all; it may be shed like a session not logged in.
   *
   * @param address Source IP.
   * @param shed Closes the connection when it is shed to make room (its slot is released already), told
   *   the BYE code a session would have been given.
   * @returns Releases the slot (once; later calls, or a call after it was shed, do nothing).
   */
  hold(address: string, shed: (code: ByeCode) => void): () => void {
    const source = sourceKey(address);
    const slot = {};
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      adjustCount(this.#perSource, source, -1);
      this.#held--;
      this.#unqueue(slot);
    };
    adjustCount(this.#perSource, source, 1);
    this.#held++;
    this.#queue(slot, source, {
      shed: (code) => {
        release();
        shed(code);
      },
    });
    return release;
  }

  /**
   * Add a new (not logged in) session.
   *
   * @param session The session.
   */
  add(session: RegisteredSession): void {
    const entry: Entry = { session, user: null, tokenOf: null };
    const source = sourceKey(session.peerAddress);
    this.#sessions.set(session.id, entry);
    adjustCount(this.#perSource, source, 1);
    this.#queue(session, source, entry);
  }

  /**
   * Record that a session logged in (a user key) or out (`null`). A session that logs out counts as a new
   * connection not logged in: the newest.
   *
   * @param session The session.
   * @param user Lower-cased user name, or `null`.
   */
  setUser(session: RegisteredSession, user: string | null): void {
    const entry = this.#sessions.get(session.id);
    if (!entry || entry.user === user) return;
    if (entry.user !== null) {
      const set = this.#byUser.get(entry.user);
      set?.delete(session);
      if (set?.size === 0) this.#byUser.delete(entry.user);
    } else {
      this.#unqueue(session);
    }
    entry.user = user;
    if (user !== null) {
      const set = this.#byUser.get(user) ?? new Set();
      set.add(session);
      this.#byUser.set(user, set);
    } else {
      // Its age as a connection not logged in starts again, as its login deadline does.
      this.#queue(session, sourceKey(session.peerAddress), entry);
    }
  }

  /**
   * Record which account's valid device token a session holds: the one its LOGIN showed, or the one a
   * login or a PASSWD gave it; `null` when it holds none (its LOGIN showed none, or a token that is not
   * valid; its account was deleted). While not logged in, it is then shed only after every connection
   * that holds none — unless a session gets a token of the same account later: only the last to get one
   * is ahead, and the one before counts from then on as holding none (as the newest).
   *
   * @param session The session.
   * @param account The account's lower-cased name, or `null`.
   */
  holdsToken(session: RegisteredSession, account: string | null): void {
    const entry = this.#sessions.get(session.id);
    if (!entry) return;
    const wasAhead = this.#aheadForToken(entry);
    if (wasAhead) this.#tokenHolder.delete(entry.tokenOf!);
    entry.tokenOf = account;
    if (account !== null) {
      const before = this.#tokenHolder.get(account);
      this.#tokenHolder.set(account, entry);
      if (before !== undefined && before !== entry) this.#fallBehind(before);
    } else if (wasAhead) {
      this.#fallBehind(entry);
    }
  }

  #aheadForToken(entry: Entry): boolean {
    return entry.tokenOf !== null && this.#tokenHolder.get(entry.tokenOf) === entry;
  }

  /**
   * A session no longer ahead for a token: if it is not logged in, it counts from now on as one that holds
   * none, the newest (wherever the shedder had put it).
   */
  #fallBehind(entry: Entry): void {
    if (entry.user !== null) return;
    this.#unqueue(entry.session);
    this.#queue(entry.session, sourceKey(entry.session.peerAddress), entry);
  }

  /**
   * Forget a session that has disconnected (or was shed).
   *
   * @param session The session.
   */
  remove(session: RegisteredSession): void {
    if (!this.#sessions.has(session.id)) return;
    this.holdsToken(session, null);
    this.setUser(session, null);
    this.#unqueue(session);
    adjustCount(this.#perSource, sourceKey(session.peerAddress), -1);
    this.#sessions.delete(session.id);
  }

  /**
   * End every session of a user except one, and remember that they were ended: a login of the user under
   * way, not registered yet, must not complete ({@linkcode SessionRegistry.endedSince}).
   *
   * @param user Lower-cased user name.
   * @param except The session that caused it, left open.
   * @param code Why.
   * @param reason Human text.
   * @returns How many sessions were ended.
   */
  endUser(user: string, except: RegisteredSession | null, code: ByeCode, reason: string): number {
    this.#noteEnded(user);
    return this.#endSessionsOf(user, except, code, reason);
  }

  #endSessionsOf(user: string, except: RegisteredSession | null, code: ByeCode, reason: string): number {
    const targets = [...(this.#byUser.get(user) ?? [])].filter((s) => s !== except);
    for (const s of targets) this.endSession(s, code, reason);
    return targets.length;
  }

  /**
   * End every logged-in session (this node lost touch with the others), and remember it: no login under
   * way may complete ({@linkcode SessionRegistry.endedSince}).
   *
   * @param code Why.
   * @param reason Human text.
   * @returns How many sessions were ended.
   */
  endLoggedIn(code: ByeCode, reason: string): number {
    this.#allEnded = ++this.#endings;
    let ended = 0;
    for (const user of [...this.#byUser.keys()]) ended += this.#endSessionsOf(user, null, code, reason);
    return ended;
  }

  /**
   * End one logged-in session (its account changed under it: see session_recheck.ts).
   *
   * @param session The session.
   * @param code Why.
   * @param reason Human text.
   */
  endSession(session: RegisteredSession, code: ByeCode, reason: string): void {
    this.setUser(session, null);
    session.end(code, reason);
  }

  /**
   * The logged-in sessions, with their user keys, at this moment.
   *
   * @returns A copy: ending sessions while going through it is safe.
   */
  loggedIn(): { session: RegisteredSession; user: string }[] {
    const all: { session: RegisteredSession; user: string }[] = [];
    for (const [user, sessions] of this.#byUser) for (const session of sessions) all.push({ session, user });
    return all;
  }

  /**
   * A point in the history of ended sessions, taken by a login before its store write: after the write,
   * {@linkcode SessionRegistry.endedSince} tells whether the login's session would have been ended had it
   * been registered then.
   *
   * @returns The mark.
   */
  mark(): number {
    return this.#endings;
  }

  /**
   * Whether sessions a login begun at `mark` would belong to were ended since: `"user"` when the user's
   * were (a `PASSWD` or `DELETE`, here or on another node; also when that is no longer known, the mark being
   * older than {@linkcode ENDED_MEMORY_MS}), `"all"` when every logged-in session was (the node lost touch
   * with the others), `null` when neither.
   *
   * @param user Lower-cased user name.
   * @param mark What {@linkcode SessionRegistry.mark} returned before the login's store write.
   * @returns Why the login must not complete, or `null`.
   */
  endedSince(user: string, mark: number): EndedSince {
    if (this.#allEnded > mark) return "all";
    if ((this.#userEnded.get(user)?.seq ?? 0) > mark || this.#forgotten > mark) return "user";
    return null;
  }

  #noteEnded(user: string): void {
    const now = this.#now();
    this.#userEnded.delete(user);
    this.#userEnded.set(user, { seq: ++this.#endings, at: now });
    for (const [key, { seq, at }] of this.#userEnded) {
      if (now - at <= ENDED_MEMORY_MS) break;
      this.#userEnded.delete(key);
      this.#forgotten = seq;
    }
  }

  /**
   * End every session (shutdown).
   *
   * @param code Why.
   * @param reason Human text.
   */
  endAll(code: ByeCode, reason: string): void {
    for (const { session } of [...this.#sessions.values()]) session.end(code, reason);
  }

  /** Number of live sessions (shed ones are gone at once). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Number of sessions logged in as a user. */
  sessionsOf(user: string): number {
    return this.#byUser.get(user)?.size ?? 0;
  }

  /**
   * Number of connections from an address (IPv6: its /64) that are not logged in, TLS handshakes included.
   *
   * @param address Source IP.
   * @returns The count.
   */
  unauthenticatedFrom(address: string): number {
    return this.#unauthenticatedOf(sourceKey(address));
  }
}
