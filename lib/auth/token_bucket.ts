/**
 * Token buckets, sans I/O: each source may spend `burst` tokens at once and
 * earns them back at `perMinute`. Used to bound work others can make us do:
 * registrations per address, relayed datagrams per user, new peer sessions
 * per link.
 *
 * @module
 */

import { sourceKey } from "./rate_limiter.ts";

/** How fast a bucket fills and how much it holds. */
export interface BucketRate {
  /** Tokens earned per millisecond. */
  perMs: number;
  /** Most tokens held. */
  burst: number;
}

/** What one bucket holds: its tokens at a time (it has earned more since). */
export interface BucketState {
  /** Tokens held at `at`. */
  tokens: number;
  /** When, in ms. */
  at: number;
}

/**
 * The rate of a bucket that earns `perMinute` tokens a minute and holds `burst` (default `perMinute`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketRate } from "./token_bucket.ts";
 * assert.deepEqual(bucketRate(60), { perMs: 0.001, burst: 60 });
 * ```
 *
 * @param perMinute Tokens earned per minute.
 * @param burst Most tokens held.
 * @returns The rate.
 */
export function bucketRate(perMinute: number, burst?: number): BucketRate {
  return { perMs: perMinute / 60_000, burst: burst ?? perMinute };
}

/**
 * The tokens a bucket holds now: what it had, plus what it earned since, at most the burst (a bucket never
 * seen is full).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketRate, bucketTokens } from "./token_bucket.ts";
 * assert(bucketTokens(undefined, 0, bucketRate(60)) === 60);
 * assert(bucketTokens({ tokens: 0, at: 0 }, 500, bucketRate(60)) === 0.5);
 * ```
 *
 * @param state What it held, if it was seen.
 * @param now Current time in ms.
 * @param rate Its rate.
 * @returns The tokens.
 */
export function bucketTokens(state: BucketState | undefined, now: number, rate: BucketRate): number {
  return Math.min(rate.burst, state ? state.tokens + (now - state.at) * rate.perMs : rate.burst);
}

/**
 * How long until a bucket holding `tokens` has one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketRate, bucketWait } from "./token_bucket.ts";
 * assert(bucketWait(1, bucketRate(60)) === 0);
 * assert(bucketWait(0.25, bucketRate(60)) === 750);
 * ```
 *
 * @param tokens What it holds now (see {@linkcode bucketTokens}).
 * @param rate Its rate.
 * @returns 0 when it has one, else milliseconds.
 */
export function bucketWait(tokens: number, rate: BucketRate): number {
  return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / rate.perMs);
}

/**
 * Spend one token of a bucket, if it has one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketRate, bucketTake } from "./token_bucket.ts";
 * const first = bucketTake(undefined, 0, bucketRate(1));
 * assert.deepEqual(first, { waitMs: 0, state: { tokens: 0, at: 0 } });
 * assert(bucketTake(first.state, 0, bucketRate(1)).waitMs === 60_000);
 * ```
 *
 * @param state What it held, if it was seen.
 * @param now Current time in ms.
 * @param rate Its rate.
 * @returns 0 and what it holds after, or the milliseconds until a token is there and the state unchanged.
 */
export function bucketTake(
  state: BucketState | undefined,
  now: number,
  rate: BucketRate,
): { waitMs: number; state: BucketState } {
  const tokens = bucketTokens(state, now, rate);
  // Refused, it holds what it held: the tokens it has now follow from that alone, whichever of its
  // states (this one or one read later) they are computed from, to the last bit.
  if (tokens < 1) return { waitMs: bucketWait(tokens, rate), state: state ?? { tokens, at: now } };
  return { waitMs: 0, state: { tokens: tokens - 1, at: now } };
}

/** Options of {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens earned per minute. */
  perMinute: number;
  /** Most tokens held (default `perMinute`). */
  burst?: number;
  /** Most sources tracked; the least recently seen go first (they are refilled anyway). */
  maxEntries?: number;
  /** What a source is counted under (default: its IP address, IPv6 by /64). */
  key?: (source: string) => string;
}

/**
 * Token buckets keyed by source (by default an IP address, IPv6 by /64).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TokenBucket } from "./token_bucket.ts";
 * const bucket = new TokenBucket({ perMinute: 2 });
 * assert(bucket.take("10.0.0.1", 0) === 0 && bucket.take("10.0.0.1", 0) === 0);
 * assert(bucket.take("10.0.0.1", 0) === 30_000);
 * ```
 */
export class TokenBucket {
  #rate: BucketRate;
  #maxEntries: number;
  #key: (source: string) => string;
  #buckets = new Map<string, BucketState>();

  /**
   * Make the buckets.
   *
   * @param options Rate, burst and bound.
   */
  constructor(options: TokenBucketOptions) {
    this.#rate = bucketRate(options.perMinute, options.burst);
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#key = options.key ?? sourceKey;
  }

  /**
   * Spend one token of a source.
   *
   * @param source The source (an IP address unless `key` says otherwise).
   * @param now Current time in ms.
   * @returns 0 when a token was spent, else the milliseconds until one is available.
   */
  take(source: string, now: number): number {
    const key = this.#key(source);
    const { waitMs, state } = bucketTake(this.#buckets.get(key), now, this.#rate);
    this.#buckets.delete(key);
    this.#buckets.set(key, state);
    while (this.#buckets.size > this.#maxEntries) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest === undefined) break;
      this.#buckets.delete(oldest);
    }
    return waitMs;
  }

  /**
   * How long until a source could spend a token, spending none.
   *
   * @param source The source (an IP address unless `key` says otherwise).
   * @param now Current time in ms.
   * @returns 0 when a token is there, else the milliseconds until one is (what {@linkcode take} would say).
   */
  wait(source: string, now: number): number {
    return bucketWait(bucketTokens(this.#buckets.get(this.#key(source)), now, this.#rate), this.#rate);
  }

  /**
   * Forget a source: its next take starts from a full bucket.
   *
   * @param source The source.
   */
  forget(source: string): void {
    this.#buckets.delete(this.#key(source));
  }
}
