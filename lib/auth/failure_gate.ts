/**
 * The arithmetic of the failure counters, sans I/O and sans storage: how long
 * an attempt must wait given the counters it meets, and what a failure or a
 * success does to one counter. `RateLimiter` keeps the counters in its
 * memory; a shared implementation keeps them elsewhere (a key-value store
 * several nodes write) and calls the same functions, so the two cannot drift.
 *
 * @module
 */

/** Failures counted against one key (a source, an account, a pair, a device token). */
export interface FailureCounter {
  /** Failed proofs not yet forgiven. */
  failures: number;
  /** Time of the latest failure, in ms. */
  last: number;
}

/** The thresholds of the gate (the `RateLimiter` options it reads). */
export interface GateLimits {
  /** Failures allowed before backoff starts: the attempt after this many failures waits (0 acts as 1). */
  freeFailures: number;
  /** First backoff, in milliseconds; it doubles with each further failure. */
  baseMs: number;
  /** Longest backoff. */
  maxMs: number;
  /** Proofs a source without failures may have checked at once (default {@linkcode DEFAULT_MAX_PARALLEL}). */
  maxParallel?: number;
}

/** Proofs a source without failures may have checked at once, unless told otherwise. */
export const DEFAULT_MAX_PARALLEL = 32;

/** One counter as an attempt meets it. */
export interface GateCounter {
  /** Its failures, `undefined` when it has none (or they were forgotten: see {@linkcode liveCounter}). */
  counter: FailureCounter | undefined;
  /** Proofs being checked against it now (each counts as a failure until it turns out correct). */
  checking: number;
}

/**
 * The counters an attempt meets: a device token's alone, or those of its (source, account) pair, its
 * source and (asked only when the source has failed) its account.
 */
export type GateView =
  | { token: GateCounter }
  | { pair: GateCounter; source: GateCounter; account: () => GateCounter };

/** What the gate says of an attempt. */
export interface GateVerdict {
  /** Milliseconds to wait; 0 means go ahead. */
  waitMs: number;
  /**
   * Whether the attempt is one of the free ones: no counter it meets is past its free failures (counting
   * the proofs being checked), and a source without failures is under `maxParallel`. A free attempt goes
   * ahead whatever the times; one that is not goes ahead only once the backoff has passed.
   */
  free: boolean;
}

/**
 * A counter as it counts now: `undefined` once `forgetAfterMs` have passed since its latest failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { liveCounter } from "./failure_gate.ts";
 * assert(liveCounter({ failures: 3, last: 0 }, 1000, 1000)?.failures === 3);
 * assert(liveCounter({ failures: 3, last: 0 }, 1001, 1000) === undefined);
 * ```
 *
 * @param counter The counter, if any.
 * @param now Current time in ms.
 * @param forgetAfterMs How long a counter without a failure is kept.
 * @returns The counter, or `undefined`.
 */
export function liveCounter(
  counter: FailureCounter | undefined,
  now: number,
  forgetAfterMs: number,
): FailureCounter | undefined {
  return counter && now - counter.last <= forgetAfterMs ? counter : undefined;
}

/** How far past its free failures a counter is (≤ 0: not past them). */
function over(limits: GateLimits, { counter, checking }: GateCounter): number {
  // `freeFailures` failed proofs pass; the attempt after the last of them waits `baseMs`.
  return (counter?.failures ?? 0) + checking - Math.max(1, limits.freeFailures) + 1;
}

/**
 * How long an attempt must wait because of one counter: nothing within the free failures, then
 * `baseMs` doubling with each further failure up to `maxMs`, counted from the latest failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { failureDelay } from "./failure_gate.ts";
 * const limits = { freeFailures: 1, baseMs: 1000, maxMs: 8000 };
 * assert(failureDelay(limits, { counter: undefined, checking: 0 }, 0) === 0);
 * assert(failureDelay(limits, { counter: { failures: 2, last: 0 }, checking: 0 }, 500) === 1500);
 * ```
 *
 * @param limits The thresholds.
 * @param gate The counter and the proofs being checked against it.
 * @param now Current time in ms.
 * @returns Milliseconds to wait.
 */
export function failureDelay(limits: GateLimits, gate: GateCounter, now: number): number {
  const past = over(limits, gate);
  if (past <= 0) return 0;
  const backoff = Math.min(limits.maxMs, limits.baseMs * 2 ** Math.min(past - 1, 40));
  return Math.max(0, (gate.counter?.last ?? now) + backoff - now);
}

/**
 * The gate: with a device token, its own counter alone; without, its pair's, and either a bound on the
 * proofs a source without failures checks at once, or (once the source has failed) the source's and the
 * account's counters too. See `RateLimiter` for why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gateVerdict } from "./failure_gate.ts";
 * const limits = { freeFailures: 1, baseMs: 1000, maxMs: 8000 };
 * const clean = { counter: undefined, checking: 0 };
 * const failed = { counter: { failures: 1, last: 0 }, checking: 0 };
 * assert.deepEqual(gateVerdict(limits, { token: failed }, 0), { waitMs: 1000, free: false });
 * assert.deepEqual(
 *   gateVerdict(limits, { pair: clean, source: clean, account: () => failed }, 0),
 *   { waitMs: 0, free: true },
 *   "a source without failures is not held back by the account's",
 * );
 * ```
 *
 * @param limits The thresholds.
 * @param view The counters the attempt meets.
 * @param now Current time in ms.
 * @returns How long to wait, and whether the attempt is a free one.
 */
export function gateVerdict(limits: GateLimits, view: GateView, now: number): GateVerdict {
  if ("token" in view) {
    return { waitMs: failureDelay(limits, view.token, now), free: over(limits, view.token) <= 0 };
  }
  const pairWait = failureDelay(limits, view.pair, now);
  const pairFree = over(limits, view.pair) <= 0;
  if (!view.source.counter) {
    const busy = view.source.checking >= (limits.maxParallel ?? DEFAULT_MAX_PARALLEL);
    return { waitMs: Math.max(pairWait, busy ? limits.baseMs : 0), free: pairFree && !busy };
  }
  const account = view.account();
  return {
    waitMs: Math.max(pairWait, failureDelay(limits, view.source, now), failureDelay(limits, account, now)),
    free: pairFree && over(limits, view.source) <= 0 && over(limits, account) <= 0,
  };
}

/**
 * A counter after one more failure (the latest failure never moves back in time).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { counterAfterFailure } from "./failure_gate.ts";
 * assert.deepEqual(counterAfterFailure(undefined, 5), { failures: 1, last: 5 });
 * assert.deepEqual(counterAfterFailure({ failures: 1, last: 5 }, 9), { failures: 2, last: 9 });
 * ```
 *
 * @param counter The live counter (see {@linkcode liveCounter}), if any.
 * @param now Current time in ms.
 * @returns The new counter.
 */
export function counterAfterFailure(counter: FailureCounter | undefined, now: number): FailureCounter {
  // A failure told late (by a node whose clock is behind, or written once the bus is back) does not move
  // the latest failure back, which would shorten the backoff.
  return { failures: (counter?.failures ?? 0) + 1, last: Math.max(counter?.last ?? now, now) };
}

/**
 * A counter after a success forgave some failures (those of the success's own pair or token).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { counterAfterForgiving } from "./failure_gate.ts";
 * assert.deepEqual(counterAfterForgiving({ failures: 3, last: 5 }, 2), { failures: 1, last: 5 });
 * assert(counterAfterForgiving({ failures: 3, last: 5 }, 3) === undefined);
 * ```
 *
 * @param counter The counter, if any.
 * @param failures How many failures are forgiven.
 * @returns The counter left, or `undefined` when none is.
 */
export function counterAfterForgiving(
  counter: FailureCounter | undefined,
  failures: number,
): FailureCounter | undefined {
  if (!counter) return undefined;
  const left = counter.failures - failures;
  return left > 0 ? { failures: left, last: counter.last } : undefined;
}
