/**
 * Constant-time comparison of secrets.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";

/**
 * Compare two byte arrays in time that depends only on their length.
 * Lengths are not secret here (every compared value has a fixed size), so a
 * length mismatch returns `false` at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { constantTimeEqual } from "./constant_time.ts";
 * assert(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
 * assert(!constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
 * ```
 *
 * @param a First value.
 * @param b Second value.
 * @returns Whether they are equal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
