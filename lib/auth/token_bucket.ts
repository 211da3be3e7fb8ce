/**
 * Token buckets, sans I/O: each source may spend `burst` tokens at once and
 * earns them back at `perMinute`. Used to bound work others can make us do:
 * registrations per address, relayed datagrams per user, new peer sessions
 * per link.
 *
 * @module
 */

import { sourceKey } from "./rate_limiter.ts";

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
  #perMs: number;
  #burst: number;
  #maxEntries: number;
  #key: (source: string) => string;
  #buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * Make the buckets.
   *
   * @param options Rate, burst and bound.
   */
  constructor(options: TokenBucketOptions) {
    this.#perMs = options.perMinute / 60_000;
    this.#burst = options.burst ?? options.perMinute;
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
    const tokens = this.#tokens(key, now);
    this.#buckets.delete(key);
    if (tokens < 1) {
      this.#buckets.set(key, { tokens, at: now });
      return this.#waitFor(tokens);
    }
    this.#buckets.set(key, { tokens: tokens - 1, at: now });
    while (this.#buckets.size > this.#maxEntries) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest === undefined) break;
      this.#buckets.delete(oldest);
    }
    return 0;
  }

  /**
   * How long until a source could spend a token, spending none.
   *
   * @param source The source (an IP address unless `key` says otherwise).
   * @param now Current time in ms.
   * @returns 0 when a token is there, else the milliseconds until one is (what {@linkcode take} would say).
   */
  wait(source: string, now: number): number {
    const tokens = this.#tokens(this.#key(source), now);
    return tokens >= 1 ? 0 : this.#waitFor(tokens);
  }

  /** The tokens a source holds now: what it had, plus what it earned since, at most the burst. */
  #tokens(key: string, now: number): number {
    const old = this.#buckets.get(key);
    return Math.min(this.#burst, old ? old.tokens + (now - old.at) * this.#perMs : this.#burst);
  }

  /** Milliseconds until a source holding `tokens` (fewer than 1) has one. */
  #waitFor(tokens: number): number {
    return Math.ceil((1 - tokens) / this.#perMs);
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
