/**
 * Presence notices coalesced per user: whatever a user does, the others hear
 * about them at most once per interval, and always of their latest state. A
 * change after a quiet interval is sent at once; changes within the interval
 * after a notice are held, and at its end the latest one is sent if it differs
 * from the notice sent last. So one account logging in and dropping in a loop
 * costs each observer at most one notice per interval, however fast it loops,
 * and a single login or logout is not delayed at all.
 *
 * Any presence directory can put one in front of its fan-out (the in-process
 * `LocalPresence` does; one fed from a message bus would too). It keeps state
 * only for users who changed within the last interval.
 *
 * @module
 */

import type { ServerMessageOf } from "../codec/messages.ts";

/** A presence notice. */
export type PresenceNotice = ServerMessageOf<"PRESENCE">;

/** Time as the coalescer sees it: the real clock, or a test's. */
export interface CoalescerClock {
  /** Current time in ms. */
  now(): number;
  /**
   * Call `fn` once, `ms` from now.
   *
   * @param fn What to call.
   * @param ms Delay in ms.
   * @returns A handle for {@linkcode CoalescerClock.clearTimeout}.
   */
  setTimeout(fn: () => void, ms: number): unknown;
  /**
   * Cancel a call not made yet.
   *
   * @param handle What {@linkcode CoalescerClock.setTimeout} returned.
   */
  clearTimeout(handle: unknown): void;
}

/** The process's clock and timers. */
export const SYSTEM_CLOCK: CoalescerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** How often, at most, the others hear about one user: every 500 ms (two notices a second). */
export const DEFAULT_NOTICE_INTERVAL_MS = 500;

/** Options of {@linkcode PresenceCoalescer}. */
export interface PresenceCoalescerOptions {
  /** Least time between two notices about one user, in ms (default {@linkcode DEFAULT_NOTICE_INTERVAL_MS}); 0 sends every change at once. */
  intervalMs?: number;
  /** Clock and timers (default {@linkcode SYSTEM_CLOCK}). */
  clock?: CoalescerClock;
}

interface Entry {
  /** When the last notice about the user was sent. */
  sentAt: number;
  /** That notice. */
  sent: PresenceNotice;
  /** The observers' generation it reached (see {@linkcode PresenceCoalescer.observerJoined}). */
  generation: number;
  /** The latest change not sent yet. */
  pending?: PresenceNotice;
  /** Sends `pending` at the end of the interval. */
  timer?: unknown;
}

function sameNotice(a: PresenceNotice, b: PresenceNotice): boolean {
  return a.user === b.user && a.state === b.state && a.key === b.key && a.fingerprint === b.fingerprint;
}

/**
 * Coalesces each user's presence changes to at most one notice per interval.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PresenceCoalescer } from "./presence_coalescer.ts";
 * let now = 0;
 * const timers: (() => void)[] = [];
 * const sent: string[] = [];
 * const coalescer = new PresenceCoalescer((_, n) => sent.push(n.state), {
 *   intervalMs: 500,
 *   clock: { now: () => now, setTimeout: (fn) => timers.push(fn), clearTimeout() {} },
 * });
 * for (let i = 0; i < 100; i++) coalescer.publish("alice", { op: "PRESENCE", user: "alice", state: i % 2 ? "offline" : "online" });
 * assert(sent.join() === "online", "the first change at once, the rest held");
 * now = 500;
 * timers.shift()!();
 * assert(sent.join() === "online,offline", "then the latest state, once");
 * ```
 */
export class PresenceCoalescer {
  #send: (userKey: string, notice: PresenceNotice) => void;
  #intervalMs: number;
  #clock: CoalescerClock;
  /** By user key, in the order of their last notice (oldest first). */
  #entries = new Map<string, Entry>();
  #generation = 0;
  #closed = false;

  /**
   * Make a coalescer.
   *
   * @param send Delivers a notice about a user to everyone who should hear it.
   * @param options Interval and clock.
   */
  constructor(
    send: (userKey: string, notice: PresenceNotice) => void,
    options: PresenceCoalescerOptions = {},
  ) {
    this.#send = send;
    this.#intervalMs = options.intervalMs ?? DEFAULT_NOTICE_INTERVAL_MS;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
  }

  /**
   * A user's presence changed: the notice goes out now, or at the end of the user's interval if it then
   * still differs from the last one sent.
   *
   * @param userKey The user's lower-cased name.
   * @param notice What the others should hear.
   */
  publish(userKey: string, notice: PresenceNotice): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#forgetQuiet(now);
    const entry = this.#entries.get(userKey);
    // The first change after a quiet interval goes out at once.
    if (!entry || (!entry.pending && now - entry.sentAt >= this.#intervalMs)) {
      return this.#sendNow(userKey, notice, now);
    }
    entry.pending = notice;
    // Math.max hands the runtime a small integer, not the heap number the subtraction of two `Date.now()`s
    // gives: a timer's delay is kept on its `Timeout` object, and once one holds a heap number every
    // `Timeout` of the process (one per session) boxes its delay in one of its own, 16 more bytes each.
    entry.timer ??= this.#clock.setTimeout(
      () => this.#flush(userKey),
      Math.max(0, entry.sentAt + this.#intervalMs - now),
    );
  }

  /**
   * Someone new is listening (a session joined). A notice held back is then sent at the end of its
   * interval even if it equals the last one sent: the newcomer did not hear that one, and may have seen
   * the user otherwise since (in a listing taken meanwhile).
   */
  observerJoined(): void {
    this.#generation++;
  }

  /** Stop: nothing held back is sent, no timer is left. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    }
    this.#entries.clear();
  }

  /** Users whose notices are being coalesced (changed within the last interval); for tests of the bound. */
  get size(): number {
    return this.#entries.size;
  }

  #sendNow(userKey: string, notice: PresenceNotice, now: number): void {
    this.#entries.delete(userKey);
    if (this.#intervalMs > 0) {
      this.#entries.set(userKey, { sentAt: now, sent: notice, generation: this.#generation });
    }
    this.#send(userKey, notice);
  }

  /** The end of a user's interval: send what was held back, if the others' view of the user is out of date. */
  #flush(userKey: string): void {
    const entry = this.#entries.get(userKey);
    if (!entry) return;
    const pending = entry.pending;
    if (pending && (!sameNotice(pending, entry.sent) || entry.generation !== this.#generation)) {
      return this.#sendNow(userKey, pending, this.#clock.now());
    }
    this.#entries.delete(userKey);
  }

  /** Forget users with nothing held back whose interval is over (they are the oldest entries). */
  #forgetQuiet(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.pending || now - entry.sentAt < this.#intervalMs) return;
      this.#entries.delete(key);
    }
  }
}
