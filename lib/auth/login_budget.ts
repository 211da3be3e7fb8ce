/**
 * Budgets of successful logins, per source address (IPv6 by /64) and per
 * account, sans I/O (the caller passes the time). Failed proofs have their own
 * counters (`RateLimiter`); these bound what a login that succeeds makes the
 * server do for everyone else: every login and every drop of a user is a
 * presence notice to every other online session, so one account logging in
 * and dropping in a loop would otherwise keep the whole server busy.
 *
 * Only successful logins spend: a stranger's wrong guesses never use up the
 * owner's budget. The budget of a source is asked at `LOGIN`, before any
 * exchange, whatever the name. The budget of an account is asked there only
 * of a source that has logged in to it before (it knows the account exists);
 * anyone else is told only after a correct proof, so a spent account budget
 * never tells a stranger that the name exists.
 *
 * A login that shows a valid device token of its account is spared the budget
 * of its source (it neither waits for it nor spends it), so that someone behind
 * the same address (a NAT, an office) cannot use it up, logging in to accounts
 * of their own, to keep the owner out. Its account's budget still holds: what
 * such logins make the server do is bounded per account.
 *
 * @module
 */

import { sourceKey } from "./rate_limiter.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Options of {@linkcode LoginBudget}. */
export interface LoginBudgetOptions {
  /** Successful logins one source address (IPv6: one /64) may make per minute, and at once. */
  perSourcePerMinute: number;
  /** Successful logins to one account per minute, and at once, from anywhere. */
  perAccountPerMinute: number;
  /** Most sources, accounts and (source, account) pairs tracked each; the least recently seen go first. */
  maxEntries?: number;
}

/**
 * Defaults: 300 logins a minute from one address (more than the 256 connections one address may hold, so
 * everyone behind a NAT can reconnect at once), and 30 a minute to one account (a person with several
 * devices reconnecting after an outage uses a handful).
 */
export const DEFAULT_LOGIN_BUDGET: Readonly<Required<LoginBudgetOptions>> = Object.freeze({
  perSourcePerMinute: 300,
  perAccountPerMinute: 30,
  maxEntries: 100_000,
});

/** What else a login shows besides its source and account. */
export interface LoginOptions {
  /** It showed a valid device token of the account: the source's budget is neither asked nor spent. */
  deviceToken?: boolean;
}

/** Why a login must wait: whose budget is spent, and for how long. */
export interface LoginRefusal {
  /** `source`: the address's budget; `account`: the account's. */
  of: "source" | "account";
  /** Milliseconds until a login fits in the budget again. */
  waitMs: number;
}

/**
 * Whose budget refuses a login, given how long each would make it wait: the source's first, then the
 * account's (pass 0 for a budget that is not asked).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loginVerdict } from "./login_budget.ts";
 * assert(loginVerdict(0, 0) === null);
 * assert.deepEqual(loginVerdict(5, 7), { of: "source", waitMs: 5 });
 * assert.deepEqual(loginVerdict(0, 7), { of: "account", waitMs: 7 });
 * ```
 *
 * @param sourceWaitMs Milliseconds until the source's budget has a login.
 * @param accountWaitMs Milliseconds until the account's budget has one.
 * @returns `null` to go ahead, else whose budget is spent and for how long.
 */
export function loginVerdict(sourceWaitMs: number, accountWaitMs: number): LoginRefusal | null {
  if (sourceWaitMs > 0) return { of: "source", waitMs: sourceWaitMs };
  return accountWaitMs > 0 ? { of: "account", waitMs: accountWaitMs } : null;
}

/**
 * The login budgets of one server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LoginBudget } from "./login_budget.ts";
 * const budget = new LoginBudget({ perSourcePerMinute: 100, perAccountPerMinute: 2 });
 * assert(budget.spend("10.0.0.1", "alice", 0) === null);
 * assert(budget.spend("10.0.0.1", "alice", 0) === null);
 * assert(budget.spend("10.0.0.1", "alice", 0)?.waitMs === 30_000);
 * assert(budget.check("10.0.0.1", "alice", 0)?.of === "account", "a source that logged in is told early");
 * assert(budget.check("10.0.0.2", "alice", 0) === null, "a stranger only after a correct proof");
 * ```
 */
export class LoginBudget {
  #sources: TokenBucket;
  #accounts: TokenBucket;
  #maxEntries: number;
  /** (source, account) pairs that logged in, least recent first. */
  #pairs = new Set<string>();

  /**
   * Make the budgets.
   *
   * @param options Rates and bound.
   */
  constructor(options: LoginBudgetOptions = DEFAULT_LOGIN_BUDGET) {
    this.#maxEntries = options.maxEntries ?? DEFAULT_LOGIN_BUDGET.maxEntries;
    this.#sources = new TokenBucket({ perMinute: options.perSourcePerMinute, maxEntries: this.#maxEntries });
    this.#accounts = new TokenBucket({
      perMinute: options.perAccountPerMinute,
      maxEntries: this.#maxEntries,
      key: (account) => account,
    });
  }

  /**
   * At `LOGIN`, before any exchange: whether a login could succeed now. Spends nothing.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name (known or not: the same work either way).
   * @param now Current time in ms.
   * @param options Whether the login showed a valid device token (then the source's budget is not asked).
   * @returns `null` to go ahead, else why to wait. The account's budget is told only to a source that
   *   has logged in to it (see the module doc).
   */
  check(address: string, account: string, now: number, options: LoginOptions = {}): LoginRefusal | null {
    const source = options.deviceToken ? 0 : this.#sources.wait(address, now);
    const known = this.#pairs.has(`${sourceKey(address)}\0${account}`);
    return loginVerdict(source, known ? this.#accounts.wait(account, now) : 0);
  }

  /**
   * After a correct proof: spend one login of the source's budget and one of the account's, or none
   * when either is spent (the login is then refused and nothing is counted).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether the login showed a valid device token (then the source's budget is not asked
   *   nor spent).
   * @returns `null` when the login fits (and was counted), else why to wait.
   */
  spend(address: string, account: string, now: number, options: LoginOptions = {}): LoginRefusal | null {
    const pair = `${sourceKey(address)}\0${account}`;
    // This source knows the account now: from here on it is told of a spent budget before any exchange.
    this.#pairs.delete(pair);
    this.#pairs.add(pair);
    while (this.#pairs.size > this.#maxEntries) this.#pairs.delete(this.#pairs.values().next().value!);
    const source = options.deviceToken ? 0 : this.#sources.wait(address, now);
    const refusal = loginVerdict(source, this.#accounts.wait(account, now));
    if (refusal) return refusal;
    if (!options.deviceToken) this.#sources.take(address, now);
    this.#accounts.take(account, now);
    return null;
  }
}
