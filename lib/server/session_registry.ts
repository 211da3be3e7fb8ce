/**
 * The live sessions of one server: which user each is logged in as, how many
 * connections each source address holds before logging in, and a way to end
 * sessions from elsewhere (account deleted, password changed, shutdown).
 *
 * It also holds the server's cap on connections (one descriptor each). At the
 * cap a new connection is still let in, and a connection that is not logged in
 * makes room for it (`BYE SERVER_FULL`): first those that have shown no device
 * token, then those that have; within each, the oldest of the source address
 * holding the most (oldest: not logged in for the longest, counting from its
 * connect or its last logout; why by address: _shed_queue.ts). A logged-in
 * session is never shed; when every connection is logged in, the newcomer is
 * refused. docs/PROTOCOL.md section 8.
 *
 * @module
 */

import { adjustCount, sourceKey } from "../auth/rate_limiter.ts";
import type { ByeCode } from "../codec/messages.ts";
import { ShedQueue } from "./_shed_queue.ts";

/** What the registry needs from a session. */
export interface RegisteredSession {
  /** Unique id. */
  readonly id: number;
  /** Source IP address. */
  readonly peerAddress: string;
  /**
   * Whether the session presented a valid device token: set by the LOGIN that presents one (absent:
   * false), and never cleared. At the connection cap, connections not logged in that have shown none are
   * shed first. The registry reads it when it picks whom to shed, so a session sets it without telling
   * the registry.
   */
  readonly showedDeviceToken?: boolean;
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
}

/** The BYE code of a connection shed to make room at the cap. */
export const SHED_CODE: ByeCode = "SERVER_FULL";

/** The BYE reason of a connection shed to make room at the cap. */
export const SHED_REASON = "Server full: this connection, not logged in, made room for a newer one; " +
  "connect again and log in sooner";

/** Why a connection is refused: which cap, and the message for the peer. */
export interface Refusal {
  /** `address`: a cap per source address; `server`: the cap in all, with every connection logged in. */
  cap: "address" | "server";
  /** The message of the `TOO_MANY_CONNECTIONS` error. */
  message: string;
}

/** A connection not logged in, as the shedder sees it. */
interface Waiting {
  /** End it to make room. */
  shed(): void;
  /** Whether it has shown a device token. */
  showedToken(): boolean;
}

/**
 * Tracks live sessions.
 *
 * @example
 * ```ts
 * import { SessionRegistry } from "./session_registry.ts";
 * const registry = new SessionRegistry({ maxUnauthenticatedPerIp: 1, maxConnectionsPerIp: 10 });
 * const session = { id: 1, peerAddress: "10.0.0.1", end() {} };
 * registry.add(session);
 * console.assert(registry.refusal("10.0.0.1") !== null);
 * registry.setUser(session, "alice");
 * console.assert(registry.refusal("10.0.0.1") === null);
 * ```
 *
 * @example At the cap, the oldest connection not logged in makes room
 * ```ts
 * import { SessionRegistry } from "./session_registry.ts";
 * const registry = new SessionRegistry({ maxUnauthenticatedPerIp: 9, maxConnectionsPerIp: 9, maxConnections: 2 });
 * const ended: number[] = [];
 * const session = (id: number) => ({ id, peerAddress: "10.0.0.1", end: () => void ended.push(id) });
 * registry.add(session(1));
 * registry.add(session(2));
 * console.assert(registry.admit("10.0.0.2") === null && ended[0] === 1);
 * registry.setUser(session(2), "alice");
 * ```
 */
export class SessionRegistry {
  #maxAnonymous: number;
  #maxTotal: number;
  #maxConnections: number;
  #perSource = new Map<string, number>();
  #sessions = new Map<number, { session: RegisteredSession; user: string | null }>();
  #byUser = new Map<string, Set<RegisteredSession>>();
  #unauthenticated = new Map<string, number>();
  /**
   * Connections not logged in, by source, in the order they became so. Those found to have shown a device
   * token move to `#waitingWithToken` when the shedder comes to them (a flag only ever turns on), which
   * keeps both in that order and each shed O(1) on average.
   */
  #waiting = new ShedQueue<Waiting>();
  #waitingWithToken = new ShedQueue<Waiting>();
  /** Slots held by connections without a session yet (TLS handshakes). */
  #held = 0;
  /** Connections shed and not yet gone: no longer counted against the cap. */
  #leaving = new Set<object>();

  /**
   * Make a registry.
   *
   * @param options Caps per source (on connections not logged in, and on all), and in all.
   */
  constructor(options: SessionRegistryOptions) {
    this.#maxAnonymous = options.maxUnauthenticatedPerIp;
    this.#maxTotal = options.maxConnectionsPerIp;
    this.#maxConnections = options.maxConnections ?? Infinity;
  }

  /** The cap on connections in all (`Infinity` when none). */
  get maxConnections(): number {
    return this.#maxConnections;
  }

  /** Connections counted against the cap: sessions and held slots, less those shed and still closing. */
  get connections(): number {
    return this.#sessions.size + this.#held - this.#leaving.size;
  }

  /**
   * Let a new connection from this address in, or say why not. Per-address caps first (as
   * {@linkcode SessionRegistry.refusal}); then, at the cap in all, a connection not logged in is shed to
   * make room ({@linkcode SessionRegistry.shedOne}); when every connection is logged in, refused.
   *
   * @param address Source IP.
   * @returns `null` when let in (room was made if needed), else why it is refused.
   */
  admit(address: string): Refusal | null {
    const refusal = this.refusal(address);
    if (refusal !== null) return { cap: "address", message: refusal };
    if (this.connections < this.#maxConnections || this.shedOne()) return null;
    return {
      cap: "server",
      message: `Server full: all ${this.#maxConnections} connections are logged in; try again later`,
    };
  }

  /**
   * Shed a connection not logged in: of those that have shown no device token if there are any, else of
   * those that have, the oldest of the source address holding the most. It is ended with
   * `BYE SERVER_FULL` and stops counting against the cap at once.
   *
   * @returns Whether one was shed (none is when every connection is logged in).
   */
  shedOne(): boolean {
    const [key, victim] = this.#nextVictim() ?? [];
    if (key === undefined || victim === undefined) return false;
    this.#unqueue(key);
    this.#leaving.add(key);
    victim.shed();
    return true;
  }

  #nextVictim(): [object, Waiting, string] | undefined {
    for (let next; (next = this.#waiting.next()) !== undefined;) {
      const [key, waiting, source] = next;
      if (!waiting.showedToken()) return next;
      this.#waiting.delete(key);
      this.#waitingWithToken.add(key, source, waiting);
    }
    return this.#waitingWithToken.next();
  }

  #queue(key: object, address: string, waiting: Waiting): void {
    if (!this.#leaving.has(key)) this.#waiting.add(key, sourceKey(address), waiting);
  }

  #unqueue(key: object): void {
    this.#waiting.delete(key);
    this.#waitingWithToken.delete(key);
  }

  #queueSession(session: RegisteredSession): void {
    this.#queue(session, session.peerAddress, {
      shed: () => session.end(SHED_CODE, SHED_REASON),
      showedToken: () => session.showedDeviceToken === true,
    });
  }

  /**
   * Why a new connection from this address is refused, if it is.
   *
   * @param address Source IP.
   * @returns `null` when within the caps, else the reason.
   */
  refusal(address: string): string | null {
    const key = sourceKey(address);
    if ((this.#perSource.get(key) ?? 0) >= this.#maxTotal) {
      return `Too many connections from your address: ${this.#maxTotal} are open`;
    }
    if ((this.#unauthenticated.get(key) ?? 0) >= this.#maxAnonymous) {
      return `Too many connections from your address that are not logged in: ${this.#maxAnonymous} are open`;
    }
    return null;
  }

  #countSource(session: RegisteredSession, delta: number): void {
    adjustCount(this.#perSource, sourceKey(session.peerAddress), delta);
  }

  #countAnonymous(session: RegisteredSession, delta: number): void {
    adjustCount(this.#unauthenticated, sourceKey(session.peerAddress), delta);
  }

  /**
   * Count a connection that has no session yet (a TLS handshake under way) as an unauthenticated one,
   * against the caps per address and in all; at the cap it may be shed like a session not logged in.
   *
   * @param address Source IP.
   * @param shed Ends the connection when it is shed to make room (it must then call the release).
   * @returns Releases the slot (once; later calls do nothing).
   */
  hold(address: string, shed: () => void = () => {}): () => void {
    const key = sourceKey(address);
    adjustCount(this.#unauthenticated, key, 1);
    adjustCount(this.#perSource, key, 1);
    this.#held++;
    const slot = {};
    this.#queue(slot, address, { shed, showedToken: () => false });
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      adjustCount(this.#unauthenticated, key, -1);
      adjustCount(this.#perSource, key, -1);
      this.#held--;
      this.#unqueue(slot);
      this.#leaving.delete(slot);
    };
  }

  /**
   * Add a new (not logged in) session.
   *
   * @param session The session.
   */
  add(session: RegisteredSession): void {
    this.#sessions.set(session.id, { session, user: null });
    this.#countAnonymous(session, 1);
    this.#countSource(session, 1);
    this.#queueSession(session);
  }

  /**
   * Record that a session logged in (a user key) or out (`null`).
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
      this.#countAnonymous(session, -1);
      this.#unqueue(session);
    }
    entry.user = user;
    if (user !== null) {
      const set = this.#byUser.get(user) ?? new Set();
      set.add(session);
      this.#byUser.set(user, set);
    } else {
      this.#countAnonymous(session, 1);
      // Its age as a connection not logged in starts again, as its login deadline does.
      this.#queueSession(session);
    }
  }

  /**
   * Forget a session that has disconnected.
   *
   * @param session The session.
   */
  remove(session: RegisteredSession): void {
    if (!this.#sessions.has(session.id)) return;
    this.setUser(session, null);
    this.#countAnonymous(session, -1);
    this.#countSource(session, -1);
    this.#sessions.delete(session.id);
    this.#unqueue(session);
    this.#leaving.delete(session);
  }

  /**
   * End every session of a user except one.
   *
   * @param user Lower-cased user name.
   * @param except The session that caused it, left open.
   * @param code Why.
   * @param reason Human text.
   * @returns How many sessions were ended.
   */
  endUser(user: string, except: RegisteredSession | null, code: ByeCode, reason: string): number {
    const targets = [...(this.#byUser.get(user) ?? [])].filter((s) => s !== except);
    for (const s of targets) {
      this.setUser(s, null);
      s.end(code, reason);
    }
    return targets.length;
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

  /** Number of live sessions (shed ones included until they are gone). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Number of sessions logged in as a user. */
  sessionsOf(user: string): number {
    return this.#byUser.get(user)?.size ?? 0;
  }
}
