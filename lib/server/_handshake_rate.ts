/**
 * Handshakes in the last second (docs/PROTOCOL.md §20.3: `INIT`s answered or admitted), counted in ten
 * buckets of 100 ms: a fixed size whatever the rate, so a flood allocates nothing here.
 *
 * @module
 */

const BUCKETS = 10;
const BUCKET_MS = 100;

/**
 * A sliding count over the last second.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandshakeRate } from "./_handshake_rate.ts";
 * const rate = new HandshakeRate();
 * rate.add(0);
 * rate.add(500);
 * assert(rate.perSecond(900) === 2);
 * assert(rate.perSecond(1_550) === 0);
 * ```
 */
export class HandshakeRate {
  #counts = new Array<number>(BUCKETS).fill(0);
  /** The bucket index (time / 100 ms) each slot last counted. */
  #epochs = new Array<number>(BUCKETS).fill(-Infinity);

  /**
   * Count one handshake.
   *
   * @param now Milliseconds.
   */
  add(now: number): void {
    const epoch = Math.floor(now / BUCKET_MS);
    const i = ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.#epochs[i] !== epoch) {
      this.#epochs[i] = epoch;
      this.#counts[i] = 0;
    }
    this.#counts[i]!++;
  }

  /**
   * Handshakes counted in the second up to `now`.
   *
   * @param now Milliseconds.
   * @returns The count.
   */
  perSecond(now: number): number {
    const epoch = Math.floor(now / BUCKET_MS);
    let n = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (epoch - this.#epochs[i]! < BUCKETS) n += this.#counts[i]!;
    }
    return n;
  }
}
