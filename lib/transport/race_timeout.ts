/**
 * Waiting with an upper bound.
 *
 * @module
 */

/**
 * Wait for a promise, but no longer than `ms`. Rejections count as settled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { raceTimeout } from "./race_timeout.ts";
 * assert(await raceTimeout(Promise.resolve(), 10));
 * assert(!await raceTimeout(new Promise(() => {}), 10));
 * ```
 *
 * @param promise What to wait for.
 * @param ms Longest wait.
 * @returns `true` when the promise settled in time.
 */
export async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = promise.then(() => true, () => true);
  const expired = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([settled, expired]);
  } finally {
    clearTimeout(timer);
  }
}
