/**
 * What a receiver delivered from one peer, so a message carried again on another session (its
 * acknowledgements were lost, the sender's session was retired) is delivered once. Bounded whatever the
 * peer sends: a few sender instances, a window of numbers each.
 *
 * @module
 */

/** Sender instances remembered per peer; the least recently heard goes first. */
export const MAX_INSTANCES = 8;
/** Numbers above the highest contiguous one that are remembered; further ahead moves the floor. */
export const WINDOW = 1024;

interface Seen {
  /** Every number up to this one is done (delivered, or passed over). */
  floor: number;
  /** Numbers above `floor + 1` delivered out of order. */
  above: Set<number>;
}

/**
 * The messages of one peer delivered so far, per sender instance.
 *
 * A sender numbers its messages 1, 2, 3, … and carries them in that order on every session, so a receiver
 * sees each instance's numbers rising, repeats aside. The first number seen of an instance sets its floor
 * just below it (earlier ones were acknowledged before this receiver's memory began, e.g. before it
 * restarted). Numbers at or below the floor, or remembered above it, are repeats. A number more than
 * {@linkcode WINDOW} past the floor moves the floor up, giving up on the hole below it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DeliveryLog } from "./_delivery_log.ts";
 * const log = new DeliveryLog();
 * assert(log.accept("a1", 1) && log.accept("a1", 2));
 * assert(!log.accept("a1", 1) && log.accept("b2", 1));
 * ```
 */
export class DeliveryLog {
  #instances = new Map<string, Seen>();

  /**
   * Record a message unless it was delivered before.
   *
   * @param instance The sender instance id (hex).
   * @param number The message's number, at least 1.
   * @returns `true` to deliver it, `false` for a repeat.
   */
  accept(instance: string, number: number): boolean {
    let seen = this.#instances.get(instance);
    if (seen) this.#instances.delete(instance);
    else seen = { floor: number - 1, above: new Set() };
    // Re-inserted: the map's order is the order in which instances were last heard.
    this.#instances.set(instance, seen);
    if (this.#instances.size > MAX_INSTANCES) this.#instances.delete(this.#instances.keys().next().value!);
    if (number <= seen.floor || seen.above.has(number)) return false;
    seen.above.add(number);
    if (number - seen.floor > WINDOW) {
      seen.floor = number - WINDOW;
      for (const n of seen.above) if (n <= seen.floor) seen.above.delete(n);
    }
    while (seen.above.delete(seen.floor + 1)) seen.floor++;
    return true;
  }

  /** Sender instances remembered, and numbers remembered above their floors (for tests of the bounds). */
  get size(): { instances: number; numbers: number } {
    let numbers = 0;
    for (const seen of this.#instances.values()) numbers += seen.above.size;
    return { instances: this.#instances.size, numbers };
  }
}
