/**
 * The live sessions of one server: which user each is logged in as, how many
 * connections each source address holds before logging in, and a way to end
 * sessions from elsewhere (account deleted, password changed, shutdown).
 *
 * @module
 */

import { adjustCount, sourceKey } from "../auth/rate_limiter.ts";
import type { ByeCode } from "../codec/messages.ts";

/** What the registry needs from a session. */
export interface RegisteredSession {
  /** Unique id. */
  readonly id: number;
  /** Source IP address. */
  readonly peerAddress: string;
  /** End the session: send BYE and close. */
  end(code: ByeCode, reason: string): void;
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
 */
export class SessionRegistry {
  #maxAnonymous: number;
  #maxTotal: number;
  #perSource = new Map<string, number>();
  #sessions = new Map<number, { session: RegisteredSession; user: string | null }>();
  #byUser = new Map<string, Set<RegisteredSession>>();
  #unauthenticated = new Map<string, number>();

  /**
   * Make a registry.
   *
   * @param options Caps per source: on connections not logged in, and on all connections.
   */
  constructor(options: { maxUnauthenticatedPerIp: number; maxConnectionsPerIp: number }) {
    this.#maxAnonymous = options.maxUnauthenticatedPerIp;
    this.#maxTotal = options.maxConnectionsPerIp;
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
   * Count a connection that has no session yet (a TLS handshake under way) as an unauthenticated one.
   *
   * @param address Source IP.
   * @returns Releases the slot (once; later calls do nothing).
   */
  hold(address: string): () => void {
    const key = sourceKey(address);
    adjustCount(this.#unauthenticated, key, 1);
    adjustCount(this.#perSource, key, 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      adjustCount(this.#unauthenticated, key, -1);
      adjustCount(this.#perSource, key, -1);
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
    }
    entry.user = user;
    if (user !== null) {
      const set = this.#byUser.get(user) ?? new Set();
      set.add(session);
      this.#byUser.set(user, set);
    } else {
      this.#countAnonymous(session, 1);
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

  /** Number of live sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Number of sessions logged in as a user. */
  sessionsOf(user: string): number {
    return this.#byUser.get(user)?.size ?? 0;
  }
}
