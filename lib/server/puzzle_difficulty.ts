/**
 * The proof-of-work difficulty a UDP server asks for, from its load (docs/PROTOCOL.md §20.3): zero while
 * handshakes per second and half-open sessions stay under their thresholds, then rising with each doubling of
 * the load, and back to zero when the load drops — with a factor-of-two hysteresis so it does not flap.
 *
 * @module
 */

/** Thresholds and steps of {@linkcode PuzzleDifficulty}. */
export interface PuzzleDifficultyOptions {
  /** Handshakes per second at which proof of work engages (default 200). */
  handshakesPerSecond?: number;
  /** Half-open sessions (admitted, handshake not complete) at which it engages (default 1000). */
  halfOpen?: number;
  /** Difficulty at the threshold, in leading zero bits (default 12: 4096 hashes, a few milliseconds). */
  base?: number;
  /** Bits added per doubling of the load past the threshold (default 2). */
  step?: number;
  /**
   * Highest difficulty asked (default 18; must stay under clients' cap, 24 by default, and be solved well
   * within a cookie's life of 10 to 20 s: 18 bits take about 1 s here, 20 bits about 4 s on average and 16 s
   * at the 99th percentile).
   */
  max?: number;
}

/** The load a server reports. */
export interface AdmissionLoad {
  /** Handshakes (INITs answered or admitted) in the last second. */
  handshakesPerSecond: number;
  /** Sessions admitted whose handshake has not completed. */
  halfOpen: number;
}

/**
 * The difficulty curve. With load ratio `r = max(hps / hpsThreshold, halfOpen / halfOpenThreshold)`, the
 * level a load calls for is `L(r) = 0` for `r < 1`, else `1 + floor(log2 r)`. The level held moves only
 * when it leaves the band `[L(r), L(2r)]`: it rises to `L(r)` at once, and falls to `L(2r)` — so it goes
 * down one level only once the load is under half of what raised it. Difficulty is 0 at level 0, else
 * `min(max, base + step × (level − 1))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PuzzleDifficulty } from "./puzzle_difficulty.ts";
 * const d = new PuzzleDifficulty({ handshakesPerSecond: 100, halfOpen: 1000 });
 * assert(d.observe({ handshakesPerSecond: 50, halfOpen: 0 }) === 0);
 * assert(d.observe({ handshakesPerSecond: 100, halfOpen: 0 }) === 12);
 * assert(d.observe({ handshakesPerSecond: 400, halfOpen: 0 }) === 16);
 * assert(d.observe({ handshakesPerSecond: 60, halfOpen: 0 }) === 12);
 * assert(d.observe({ handshakesPerSecond: 49, halfOpen: 0 }) === 0);
 * ```
 */
export class PuzzleDifficulty {
  #hps: number;
  #halfOpen: number;
  #base: number;
  #step: number;
  #max: number;
  #level = 0;

  /**
   * Make the curve.
   *
   * @param options Thresholds and steps.
   * @throws {RangeError} When a threshold is not positive or a difficulty is outside 0..64.
   */
  constructor(options: PuzzleDifficultyOptions = {}) {
    this.#hps = options.handshakesPerSecond ?? 200;
    this.#halfOpen = options.halfOpen ?? 1000;
    this.#base = options.base ?? 12;
    this.#step = options.step ?? 2;
    this.#max = options.max ?? 18;
    for (const [what, value] of [["handshakesPerSecond", this.#hps], ["halfOpen", this.#halfOpen]] as const) {
      if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`Invalid ${what} threshold: ${value}`);
    }
    for (const [what, value] of [["base", this.#base], ["step", this.#step], ["max", this.#max]] as const) {
      if (!Number.isInteger(value) || value < 0 || value > 64) {
        throw new RangeError(`Invalid ${what}: ${value}`);
      }
    }
    if (this.#base < 1 || this.#base > this.#max) {
      throw new RangeError(`Invalid base: ${this.#base} must be in 1..max (${this.#max})`);
    }
  }

  /**
   * Report the load and get the difficulty to ask from now on.
   *
   * @param load Handshakes per second and half-open sessions (NaN or negative count as 0, Infinity as the most).
   * @returns The difficulty, 0 for none.
   */
  observe(load: AdmissionLoad): number {
    const ratio = Math.max(sane(load.handshakesPerSecond) / this.#hps, sane(load.halfOpen) / this.#halfOpen);
    this.#level = Math.min(Math.max(this.#level, level(ratio)), level(2 * ratio));
    return this.current();
  }

  /**
   * The difficulty asked now, as the last report left it.
   *
   * @returns Leading zero bits, 0 for none.
   */
  current(): number {
    return this.#level === 0 ? 0 : Math.min(this.#max, this.#base + this.#step * (this.#level - 1));
  }
}

/** NaN and negative reports count as no load; an infinite one as the most (failing safe). */
function sane(value: number): number {
  return value > 0 ? value : 0;
}

function level(ratio: number): number {
  // Capped so an absurd report cannot overflow anything; far above any `max`.
  return ratio < 1 ? 0 : Math.min(64, 1 + Math.floor(Math.log2(ratio)));
}
