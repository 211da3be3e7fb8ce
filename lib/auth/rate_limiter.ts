/**
 * Failure counters with exponential backoff, per source address and per
 * account, sans I/O (the caller passes the time).
 *
 * The account counter slows down only sources that have failed themselves: a
 * source with no recent failures is never held back by someone else's guesses,
 * so an attacker cannot lock the real owner out from elsewhere. A correct proof
 * forgives only the failures of its own (source, account) pair. IPv6 sources
 * are counted per /64, the block one subscriber usually holds.
 *
 * Proofs being checked count as failures until they turn out correct, so proofs
 * sent in parallel cannot all pass the gate before the first fails: for their
 * own (source, account) pair always, and for the source and the account once
 * the source has failed. A source that has not failed can check up to
 * `maxParallel` proofs for different accounts at once (the users behind one
 * NAT logging in), so a first burst of guesses is bounded by that too.
 *
 * An attempt that shows a valid device token for its account (lib/crypto/device_token.ts)
 * is counted apart: only against that token, with the same thresholds, and
 * never against its source, account or pair. So neither strangers' failures
 * nor a source in backoff hold it back, and its own failures back it off
 * without adding to anyone else's count.
 *
 * @module
 */

import { counterAfterFailure, counterAfterForgiving, gateVerdict, liveCounter } from "./failure_gate.ts";
import type { FailureCounter, GateLimits } from "./failure_gate.ts";

/** Options of {@linkcode RateLimiter}: the gate's thresholds, and how long and how many counters are kept. */
export interface RateLimiterOptions extends GateLimits {
  /** A counter with no failure for this long is forgotten. */
  forgetAfterMs: number;
  /** Most counters kept per kind; the least recently failed go first. */
  maxEntries: number;
}

/** Defaults: 5 free failures, then 1 s doubling up to 15 min, forgotten after 1 h. */
export const DEFAULT_RATE_LIMITS: RateLimiterOptions = {
  freeFailures: 5,
  baseMs: 1000,
  maxMs: 15 * 60_000,
  forgetAfterMs: 60 * 60_000,
  maxEntries: 100_000,
};

/** What else an attempt shows besides its source and account. */
export interface AttemptOptions {
  /**
   * The id of a valid device token shown for this account: the attempt is counted against the token
   * alone (see the module doc).
   */
  deviceToken?: string;
}

/**
 * The key a source address is counted under: IPv4 as is, IPv6 by its /64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sourceKey } from "./rate_limiter.ts";
 * assert(sourceKey("2001:db8:1:2:3:4:5:6") === sourceKey("2001:db8:1:2::9"));
 * ```
 *
 * @param address An IP address.
 * @returns Its counter key.
 */
export function sourceKey(address: string): string {
  if (!address.includes(":")) return address;
  const groups = expandIpv6(address);
  if (!groups) return address.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d, in any spelling) counts as the IPv4 address it carries.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/**
 * Add `delta` to a count kept in a map; a count that reaches 0 leaves the map.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adjustCount } from "./rate_limiter.ts";
 * const counts = new Map<string, number>();
 * adjustCount(counts, "a", 1);
 * adjustCount(counts, "a", -1);
 * assert(counts.size === 0);
 * ```
 *
 * @param map The counts.
 * @param key What is counted.
 * @param delta The change.
 */
export function adjustCount(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}

/** The eight 16-bit groups of an IPv6 address (zone and embedded IPv4 handled), or `null`. */
function expandIpv6(address: string): number[] | null {
  let text = address.toLowerCase().replace(/%.*$/, "");
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string) =>
    part === "" ? [] : part.split(":").map((g) => /^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array(Math.max(0, fill)).fill(0), ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g)) ? groups : null;
}

/**
 * Tracks failures and answers how long a source must wait.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RateLimiter } from "./rate_limiter.ts";
 * const limiter = new RateLimiter({ freeFailures: 1, baseMs: 1000, maxMs: 8000, forgetAfterMs: 60000, maxEntries: 10 });
 * limiter.recordFailure("10.0.0.1", "alice", 0);
 * assert(limiter.retryAfter("10.0.0.1", "alice", 0) === 1000);
 * assert(limiter.retryAfter("10.0.0.2", "alice", 0) === 0);
 * ```
 */
export class RateLimiter {
  #options: RateLimiterOptions;
  #sources = new Map<string, FailureCounter>();
  #accounts = new Map<string, FailureCounter>();
  /** Failures per (source, account), so a success forgives exactly its own pair's failures. */
  #pairs = new Map<string, FailureCounter>();
  /** Failures of attempts that showed a device token, per token id. */
  #tokens = new Map<string, FailureCounter>();

  /**
   * Make a limiter.
   *
   * @param options Thresholds and bounds.
   */
  constructor(options: RateLimiterOptions = DEFAULT_RATE_LIMITS) {
    this.#options = options;
  }

  /** Proofs being checked, by `s:` source, `a:` account, `p:` pair and `t:` device token key. */
  #checking = new Map<string, number>();

  #count(key: string): number {
    return this.#checking.get(key) ?? 0;
  }

  #adjust(key: string, by: number): void {
    adjustCount(this.#checking, key, by);
  }

  #live(map: Map<string, FailureCounter>, key: string, now: number): FailureCounter | undefined {
    const counter = map.get(key);
    if (counter && !liveCounter(counter, now, this.#options.forgetAfterMs)) {
      map.delete(key);
      return undefined;
    }
    return counter;
  }

  /**
   * How long a source must wait before trying an account again.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name (known or not).
   * @param now Current time in ms.
   * @param options The device token the attempt showed, if any: then only the token's own failures count.
   * @returns Milliseconds to wait; 0 means go ahead.
   */
  retryAfter(address: string, account: string, now: number, options: AttemptOptions = {}): number {
    const token = options.deviceToken;
    const gate = (map: Map<string, FailureCounter>, key: string, checking: string) => ({
      counter: this.#live(map, key, now),
      checking: this.#count(checking),
    });
    if (token !== undefined) {
      return gateVerdict(this.#options, { token: gate(this.#tokens, token, `t:${token}`) }, now).waitMs;
    }
    const key = sourceKey(address);
    const pair = `${key}\0${account}`;
    return gateVerdict(this.#options, {
      pair: gate(this.#pairs, pair, `p:${pair}`),
      source: gate(this.#sources, key, `s:${key}`),
      account: () => gate(this.#accounts, account, `a:${account}`),
    }, now).waitMs;
  }

  /**
   * A proof is being checked: until {@linkcode end}, it counts as a failure (see the module doc).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param options The device token the attempt showed, if any.
   */
  begin(address: string, account: string, options: AttemptOptions = {}): void {
    if (options.deviceToken !== undefined) return this.#adjust(`t:${options.deviceToken}`, 1);
    const key = sourceKey(address);
    this.#adjust(`s:${key}`, 1);
    this.#adjust(`a:${account}`, 1);
    this.#adjust(`p:${key}\0${account}`, 1);
  }

  /**
   * The check of a proof {@linkcode begin} counted has ended.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param correct Whether the proof was correct (a success) or not (a failure).
   * @param options The device token the attempt showed, if any (as given to {@linkcode begin}). A success
   *   forgives the token's failures; a failure counts against the token only.
   */
  end(address: string, account: string, now: number, correct: boolean, options: AttemptOptions = {}): void {
    const token = options.deviceToken;
    if (token !== undefined) {
      this.#adjust(`t:${token}`, -1);
      if (correct) this.#tokens.delete(token);
      else this.#bump(this.#tokens, token, now);
      return;
    }
    const key = sourceKey(address);
    this.#adjust(`s:${key}`, -1);
    this.#adjust(`a:${account}`, -1);
    this.#adjust(`p:${key}\0${account}`, -1);
    if (correct) this.recordSuccess(address, account);
    else this.recordFailure(address, account, now);
  }

  #bump(map: Map<string, FailureCounter>, key: string, now: number): void {
    const counter = counterAfterFailure(this.#live(map, key, now), now);
    map.delete(key);
    map.set(key, counter);
    while (map.size > this.#options.maxEntries) {
      const oldest = map.keys().next().value;
      if (oldest === undefined) break;
      map.delete(oldest);
    }
  }

  #forgive(map: Map<string, FailureCounter>, key: string, failures: number): void {
    const counter = counterAfterForgiving(map.get(key), failures);
    // Forgiving does not make a counter more recent: it keeps its place.
    if (counter) map.set(key, counter);
    else map.delete(key);
  }

  /**
   * Count a failed proof.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   */
  recordFailure(address: string, account: string, now: number): void {
    const source = sourceKey(address);
    this.#bump(this.#sources, source, now);
    this.#bump(this.#accounts, account, now);
    this.#bump(this.#pairs, `${source}\0${account}`, now);
  }

  /**
   * A correct proof forgives the failures this source made on this account, and only those: logging
   * in to one account does not wipe out guesses made at another.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   */
  recordSuccess(address: string, account: string): void {
    const source = sourceKey(address);
    const pair = this.#pairs.get(`${source}\0${account}`);
    if (!pair) return;
    this.#pairs.delete(`${source}\0${account}`);
    this.#forgive(this.#sources, source, pair.failures);
    this.#forgive(this.#accounts, account, pair.failures);
  }

  /** Number of counters held; for tests of the memory bound. */
  get size(): { sources: number; accounts: number; pairs: number; tokens: number; checking: number } {
    return {
      sources: this.#sources.size,
      accounts: this.#accounts.size,
      pairs: this.#pairs.size,
      tokens: this.#tokens.size,
      checking: this.#checking.size,
    };
  }
}
