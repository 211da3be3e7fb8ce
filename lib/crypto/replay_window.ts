/**
 * Anti-replay window for datagram counters (RFC 4303 §3.4.3, with the
 * bitmap-free slot layout of RFC 6479): the highest authenticated counter and
 * the 63 below it are remembered; anything older is refused.
 *
 * @module
 */

/** How many counters, ending at the highest one seen, the window remembers. */
export const REPLAY_WINDOW_SIZE = 64;

/**
 * Tracks which counters of one receive key have been accepted.
 *
 * Each slot `counter % 64` holds the last counter accepted into it, so a
 * counter inside the window is fresh exactly when its slot holds some other
 * (older) counter. Nothing shifts when the window moves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReplayWindow } from "./replay_window.ts";
 * const w = new ReplayWindow();
 * assert(w.check(5));
 * w.accept(5);
 * assert(!w.check(5));
 * assert(w.check(4));
 * ```
 */
export class ReplayWindow {
  #slots = new Float64Array(REPLAY_WINDOW_SIZE).fill(-1);
  #top = -1;

  /** The highest counter accepted so far, or -1 before the first. */
  get highest(): number {
    return this.#top;
  }

  /**
   * Tell whether a counter would be accepted: newer than every one seen, or
   * inside the window and not seen yet. Marks nothing.
   *
   * @param counter The datagram counter.
   * @returns `false` for a replay, a counter older than the window, or a
   *   value that is not a non-negative safe integer.
   */
  check(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (counter > this.#top) return true;
    if (this.#top - counter >= REPLAY_WINDOW_SIZE) return false;
    return this.#slots[counter % REPLAY_WINDOW_SIZE] !== counter;
  }

  /**
   * Mark a counter as seen. Call only once the datagram has authenticated,
   * so forgeries cannot move the window.
   *
   * @param counter The datagram counter.
   * @returns Whether the counter was fresh (same as {@linkcode check} just
   *   before); when `false` nothing changes.
   */
  accept(counter: number): boolean {
    if (!this.check(counter)) return false;
    if (counter > this.#top) this.#top = counter;
    this.#slots[counter % REPLAY_WINDOW_SIZE] = counter;
    return true;
  }
}
