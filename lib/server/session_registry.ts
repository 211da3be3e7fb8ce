/**
 * The live sessions of one server: which user each is logged in as, how many
 * connections each source address holds before logging in, and a way to end
 * sessions from elsewhere (account deleted, password changed, shutdown).
 *
 * A new connection is never refused for the connections of its address that are not logged in: at a cap
 * the oldest of them is shed instead, so idle connections from an address (32 by default) cannot lock
 * out everyone behind it. Connections that showed a valid device token go last (docs/PROTOCOL.md,
 * section 8).
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
  /**
   * Whether the session showed a valid device token in LOGIN (or holds one from a login): at a cap,
   * sessions that did are shed only after every one that did not.
   */
  readonly showedDeviceToken: boolean;
  /** End the session: send BYE and close. */
  end(code: ByeCode, reason: string): void;
}

/** A connection that is not logged in: a session, or a TLS handshake under way. */
interface Waiting {
  /** Whether it showed a valid device token (a handshake never has). */
  tokened(): boolean;
  /** Close it to make room (it has already left the counts). */
  shed(): void;
}

interface Entry {
  session: RegisteredSession;
  user: string | null;
  waiting: Waiting;
}

/**
 * Tracks live sessions.
 *
 * @example
 * ```ts
 * import { SessionRegistry } from "./session_registry.ts";
 * const registry = new SessionRegistry({ maxUnauthenticatedPerIp: 1, maxConnectionsPerIp: 10 });
 * const ended: string[] = [];
 * const session = { id: 1, peerAddress: "10.0.0.1", showedDeviceToken: false, end: (code: string) => ended.push(code) };
 * registry.add(session);
 * console.assert(registry.admit("10.0.0.1") === null && ended[0] === "TOO_MANY_CONNECTIONS");
 * ```
 */
export class SessionRegistry {
  #maxAnonymous: number;
  #maxTotal: number;
  #perSource = new Map<string, number>();
  #sessions = new Map<number, Entry>();
  #byUser = new Map<string, Set<RegisteredSession>>();
  /** Per source, the connections not logged in, oldest first (a set keeps insertion order). */
  #waiting = new Map<string, Set<Waiting>>();

  /**
   * Make a registry.
   *
   * @param options Caps per source: on connections not logged in, and on all connections.
   */
  constructor(options: { maxUnauthenticatedPerIp: number; maxConnectionsPerIp: number }) {
    this.#maxAnonymous = options.maxUnauthenticatedPerIp;
    this.#maxTotal = options.maxConnectionsPerIp;
  }

  #wait(key: string, waiting: Waiting): void {
    const set = this.#waiting.get(key) ?? new Set();
    set.add(waiting);
    this.#waiting.set(key, set);
  }

  #unwait(key: string, waiting: Waiting): boolean {
    const set = this.#waiting.get(key);
    if (!set?.delete(waiting)) return false;
    if (set.size === 0) this.#waiting.delete(key);
    return true;
  }

  /** The connection a cap sheds: the oldest not logged in without a device token, else the oldest with one. */
  #victim(key: string): Waiting | null {
    let oldest: Waiting | null = null;
    for (const waiting of this.#waiting.get(key) ?? []) {
      if (!waiting.tokened()) return waiting;
      oldest ??= waiting;
    }
    return oldest;
  }

  /**
   * Make room for a new connection from this address, or say why it is refused. At either cap the oldest
   * connection of the address that is not logged in and showed no device token is shed (a session gets
   * `BYE TOO_MANY_CONNECTIONS`, a TLS handshake is closed), else the oldest one not logged in that did. A
   * logged-in connection is never shed: only when every connection of the address is logged in is the
   * new one refused (`max_connections_per_ip`).
   *
   * @param address Source IP.
   * @returns `null` when the connection may go ahead (after shedding, if need be), else the reason.
   */
  admit(address: string): string | null {
    const key = sourceKey(address);
    while (
      (this.#waiting.get(key)?.size ?? 0) >= this.#maxAnonymous ||
      (this.#perSource.get(key) ?? 0) >= this.#maxTotal
    ) {
      const victim = this.#victim(key);
      if (victim === null) {
        return (this.#perSource.get(key) ?? 0) >= this.#maxTotal
          ? `Too many connections from your address: ${this.#maxTotal} are open`
          : `Too many connections from your address that are not logged in: ${this.#maxAnonymous} are open`;
      }
      victim.shed();
    }
    return null;
  }

  /**
   * Count a connection that has no session yet (a TLS handshake under way) as an unauthenticated one.
   *
   * @param address Source IP.
   * @param shed Closes the connection when a cap sheds it (its slot is released already).
   * @returns Releases the slot (once; later calls, or a call after it was shed, do nothing).
   */
  hold(address: string, shed: () => void): () => void {
    const key = sourceKey(address);
    const waiting: Waiting = {
      tokened: () => false,
      shed: () => {
        release();
        shed();
      },
    };
    const release = () => {
      if (this.#unwait(key, waiting)) adjustCount(this.#perSource, key, -1);
    };
    this.#wait(key, waiting);
    adjustCount(this.#perSource, key, 1);
    return release;
  }

  /**
   * Add a new (not logged in) session.
   *
   * @param session The session.
   */
  add(session: RegisteredSession): void {
    const waiting: Waiting = {
      tokened: () => session.showedDeviceToken,
      shed: () => {
        this.remove(session);
        session.end(
          "TOO_MANY_CONNECTIONS",
          `Too many connections from your address that are not logged in: this one, the oldest, made room ` +
            `for a new one (at most ${this.#maxAnonymous}, or ${this.#maxTotal} in all)`,
        );
      },
    };
    const key = sourceKey(session.peerAddress);
    this.#sessions.set(session.id, { session, user: null, waiting });
    this.#wait(key, waiting);
    adjustCount(this.#perSource, key, 1);
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
    const key = sourceKey(session.peerAddress);
    if (entry.user !== null) {
      const set = this.#byUser.get(entry.user);
      set?.delete(session);
      if (set?.size === 0) this.#byUser.delete(entry.user);
    } else {
      this.#unwait(key, entry.waiting);
    }
    entry.user = user;
    if (user !== null) {
      const set = this.#byUser.get(user) ?? new Set();
      set.add(session);
      this.#byUser.set(user, set);
    } else {
      this.#wait(key, entry.waiting);
    }
  }

  /**
   * Forget a session that has disconnected (or was shed).
   *
   * @param session The session.
   */
  remove(session: RegisteredSession): void {
    const entry = this.#sessions.get(session.id);
    if (!entry) return;
    this.setUser(session, null);
    const key = sourceKey(session.peerAddress);
    this.#unwait(key, entry.waiting);
    adjustCount(this.#perSource, key, -1);
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

  /**
   * Number of connections from an address (IPv6: its /64) that are not logged in, TLS handshakes included.
   *
   * @param address Source IP.
   * @returns The count.
   */
  unauthenticatedFrom(address: string): number {
    return this.#waiting.get(sourceKey(address))?.size ?? 0;
  }
}
