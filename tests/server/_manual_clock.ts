/**
 * A clock with timers that move only when a test says so, for components that take a
 * {@linkcode CoalescerClock} (or, adapted, a `Logger`'s `now` and `schedule`).
 *
 * @module
 */

import type { CoalescerClock } from "../../lib/server/presence_coalescer.ts";

/** Time and timers under a test's control. */
export class ManualClock implements CoalescerClock {
  #time: { now: number };
  #timers = new Map<number, { at: number; fn: () => void }>();
  #nextId = 1;

  /**
   * Make a clock.
   *
   * @param time The time to read and move (a session kit's clock, to share it), else its own from 0.
   */
  constructor(time: { now: number } = { now: 0 }) {
    this.#time = time;
  }

  now(): number {
    return this.#time.now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#time.now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Move time forward, running each timer that falls due at its own time, in order.
   *
   * @param ms How far.
   */
  advance(ms: number): void {
    const end = this.#time.now + ms;
    while (true) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#time.now = next[1].at;
      next[1].fn();
    }
    this.#time.now = end;
  }
}
