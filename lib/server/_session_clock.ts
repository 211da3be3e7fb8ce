/**
 * When a session times out, and why: the login deadline before login, then
 * the idle timeout — or, once the client has sent a keepalive, the (shorter)
 * keepalive timeout, so a client that died goes offline soon.
 *
 * @module
 */

import type { ByeCode } from "../codec/messages.ts";

/** The timeouts a session follows, in ms. */
export interface SessionTimeouts {
  authTimeoutMs: number;
  idleTimeoutMs: number;
  keepaliveTimeoutMs: number;
}

/**
 * One session's timers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SessionClock } from "./_session_clock.ts";
 * const clock = new SessionClock({ authTimeoutMs: 30, idleTimeoutMs: 900, keepaliveTimeoutMs: 15 }, 0);
 * assert(clock.deadline(false) === 30 && clock.deadline(true) === 900);
 * clock.keepalive();
 * assert(clock.deadline(true) === 15 && clock.expiry(true)[0] === "KEEPALIVE_TIMEOUT");
 * ```
 */
export class SessionClock {
  #t: SessionTimeouts;
  #authSince: number;
  #lastActivity: number;
  #keepalive = false;

  /**
   * Start the clock of a new connection.
   *
   * @param timeouts The server's timeouts.
   * @param now Current time in ms.
   */
  constructor(timeouts: SessionTimeouts, now: number) {
    this.#t = timeouts;
    this.#authSince = this.#lastActivity = now;
  }

  /**
   * A request arrived.
   *
   * @param now Current time in ms.
   */
  activity(now: number): void {
    this.#lastActivity = now;
  }

  /**
   * The session logged out: it has the login timeout again.
   *
   * @param now Current time in ms.
   */
  loggedOut(now: number): void {
    this.#authSince = now;
  }

  /** The client sent a keepalive: from now on it is held to the keepalive timeout. */
  keepalive(): void {
    this.#keepalive = true;
  }

  /** How long a session that sends keepalives may stay silent. */
  get #quietLimitMs(): number {
    return Math.min(this.#t.keepaliveTimeoutMs, this.#t.idleTimeoutMs);
  }

  /**
   * When the session times out.
   *
   * @param loggedIn Whether it is logged in.
   * @returns The time in ms.
   */
  deadline(loggedIn: boolean): number {
    if (!loggedIn) return this.#authSince + this.#t.authTimeoutMs;
    return this.#lastActivity + (this.#keepalive ? this.#quietLimitMs : this.#t.idleTimeoutMs);
  }

  /**
   * Why a session past its deadline ends.
   *
   * @param loggedIn Whether it is logged in.
   * @returns The BYE code and reason.
   */
  expiry(loggedIn: boolean): [ByeCode, string] {
    if (!loggedIn) {
      return ["AUTH_TIMEOUT", `Not logged in within ${this.#t.authTimeoutMs / 1000} s: connection closed`];
    }
    return this.#keepalive
      ? ["KEEPALIVE_TIMEOUT", `No keepalive for ${this.#quietLimitMs / 1000} s: session closed`]
      : ["IDLE_TIMEOUT", `Idle for ${this.#t.idleTimeoutMs / 1000} s: session closed`];
  }
}
