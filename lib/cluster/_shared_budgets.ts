/**
 * The registration and login budgets of every node, on the shared limit
 * records, with `TokenBucket`'s and `LoginBudget`'s arithmetic: a source's
 * registrations and logins live in its record (`s.…`), an account's logins in
 * its own (`a.…`), and whether a source has logged in to an account in their
 * pair's (`p.….…`), as long as the pair's record is kept (the counters' forget
 * time, at least an hour, after its latest login: a longer-lived pair is told
 * a spent budget of its account only after a correct proof, like a stranger).
 *
 * When NATS cannot be reached, registrations are refused (`UNAVAILABLE`) and
 * each node spends the login budgets on its own from what it last saw.
 *
 * @module
 */

import { loginVerdict } from "../auth/login_budget.ts";
import type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import { sourceKey } from "../auth/rate_limiter.ts";
import { bucketTake, bucketTokens, bucketWait } from "../auth/token_bucket.ts";
import type { BucketRate, BucketState } from "../auth/token_bucket.ts";
import type { LimitRecord } from "./_limit_record.ts";
import type { LimitStore } from "./_limit_store.ts";
import { busToken } from "./nats_bus.ts";

/** The budgets' rates. */
export interface BudgetRates {
  /** Registrations per source. */
  registrations: BucketRate;
  /** Logins per source. */
  sourceLogins: BucketRate;
  /** Logins per account. */
  accountLogins: BucketRate;
  /** How long a pair that logged in counts as knowing its account, in ms. */
  knownForMs: number;
}

/** A login's keys: its source's (unless a device token spares it), account's and pair's. */
interface LoginKeys {
  source: string | undefined;
  account: string;
  pair: string;
}

function loginKeys(address: string, account: string, options: LoginOptions): LoginKeys {
  const source = busToken(sourceKey(address));
  const name = busToken(account);
  return {
    source: options.deviceToken ? undefined : `s.${source}`,
    account: `a.${name}`,
    pair: `p.${source}.${name}`,
  };
}

/** The budgets, on a node's {@linkcode LimitStore}. */
export class SharedBudgets {
  #store: LimitStore;
  #rates: BudgetRates;
  #refuse: () => Error;

  /**
   * Count budgets in a store.
   *
   * @param store The node's records.
   * @param rates The budgets' rates.
   * @param unavailable The error for what cannot be counted without NATS.
   */
  constructor(store: LimitStore, rates: BudgetRates, unavailable: () => Error) {
    this.#store = store;
    this.#rates = rates;
    this.#refuse = unavailable;
  }

  /**
   * A record as it is worth keeping: budgets that are full again left out, a pair's login once it no
   * longer counts.
   *
   * @param key The record's key.
   * @param record The record.
   * @param now Current time in ms.
   * @returns The budgets' part of it.
   */
  tidy(key: string, record: LimitRecord, now: number): LimitRecord {
    const out: LimitRecord = {};
    const loginRate = this.#loginRate(key);
    if (record.logins && bucketTokens(record.logins, now, loginRate) < loginRate.burst) {
      out.logins = record.logins;
    }
    const { registrations } = this.#rates;
    if (
      record.registrations && bucketTokens(record.registrations, now, registrations) < registrations.burst
    ) {
      out.registrations = record.registrations;
    }
    if (this.#known(record, now)) out.knownAt = record.knownAt!;
    return out;
  }

  #loginRate(key: string): BucketRate {
    return key.startsWith("s.") ? this.#rates.sourceLogins : this.#rates.accountLogins;
  }

  #known(record: LimitRecord | undefined, now: number, within = this.#rates.knownForMs): boolean {
    return record?.knownAt !== undefined && now - record.knownAt <= within;
  }

  /**
   * Whether a pair's mark that its source knows the account is recent enough not to be written again yet
   * (it is, once half its time has passed).
   *
   * @param record The pair's record, as this node last saw it.
   * @param now Current time in ms.
   * @returns `true` when writing the mark now would not be needed.
   */
  markFresh(record: LimitRecord | undefined, now: number): boolean {
    return this.#known(record, now, this.#rates.knownForMs / 2);
  }

  /**
   * Take one registration from a source's budget (see `AbuseLimits.takeRegistration`).
   *
   * @param address Source IP address.
   * @param now Current time in ms.
   * @returns 0 when taken, else milliseconds until one is available.
   * @throws {Error} `unavailable()` when NATS cannot be reached.
   */
  async takeRegistration(address: string, now: number): Promise<number> {
    const key = `s.${busToken(sourceKey(address))}`;
    return await this.#store.locked([key], () =>
      this.#store.answer(
        () =>
          this.#store.modify(key, now, (record) => {
            const { waitMs, state } = bucketTake(record.registrations, now, this.#rates.registrations);
            return waitMs > 0
              ? { result: waitMs }
              : { record: { ...record, registrations: state }, result: 0 };
          }),
        () => {
          throw this.#refuse();
        },
      ));
  }

  #waits(
    keys: LoginKeys,
    records: Map<string, LimitRecord>,
    now: number,
  ): { source: number; account: number } {
    const wait = (key: string | undefined, rate: BucketRate) =>
      key === undefined ? 0 : bucketWait(bucketTokens(records.get(key)?.logins, now, rate), rate);
    return {
      source: wait(keys.source, this.#rates.sourceLogins),
      account: wait(keys.account, this.#rates.accountLogins),
    };
  }

  /**
   * Whether a login could be admitted now (see `AbuseLimits.checkLogin`).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` to go ahead, else whose budget is spent and for how long.
   */
  checkLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions,
  ): Promise<LoginRefusal | null> {
    const names = this.#checkKeys(address, account, options);
    const answer = (records: Map<string, LimitRecord>) =>
      this.checkFrom(address, account, now, options, records);
    return this.#store.answer(
      async () => answer(await this.#store.readAll(names)),
      () => answer(this.#store.knownAll(names)),
    );
  }

  /** The keys {@linkcode SharedBudgets.checkLogin} reads. */
  #checkKeys(address: string, account: string, options: LoginOptions): string[] {
    const keys = loginKeys(address, account, options);
    return [keys.pair, keys.account, ...(keys.source ? [keys.source] : [])];
  }

  /**
   * {@linkcode SharedBudgets.checkLogin}'s answer from records already read.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @param records The records of the login's pair, account and (without a device token) source; a missing
   *   one is empty.
   * @returns `null` to go ahead, else whose budget is spent and for how long.
   */
  checkFrom(
    address: string,
    account: string,
    now: number,
    options: LoginOptions,
    records: Map<string, LimitRecord>,
  ): LoginRefusal | null {
    const keys = loginKeys(address, account, options);
    const waits = this.#waits(keys, records, now);
    return loginVerdict(waits.source, this.#known(records.get(keys.pair), now) ? waits.account : 0);
  }

  /**
   * Count a login against the budgets, or refuse it (see `AbuseLimits.spendLogin`).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` when admitted (and counted), else whose budget is spent and for how long.
   */
  async spendLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions,
  ): Promise<LoginRefusal | null> {
    const keys = loginKeys(address, account, options);
    return await this.#store.locked(
      [keys.pair, keys.account, ...(keys.source ? [keys.source] : [])],
      () => this.spendHeld(address, account, now, options),
    );
  }

  /**
   * {@linkcode SharedBudgets.spendLogin} for a caller that holds the login's locks already (its pair's,
   * account's and, without a device token, source's).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` when admitted (and counted), else whose budget is spent and for how long.
   */
  spendHeld(
    address: string,
    account: string,
    now: number,
    options: LoginOptions,
  ): Promise<LoginRefusal | null> {
    const keys = loginKeys(address, account, options);
    const budgets = [keys.account, ...(keys.source ? [keys.source] : [])];
    return this.#store.answer(
      () => this.#spendOnline(keys, budgets, now),
      () => this.spendAlone(address, account, now, options),
    );
  }

  /**
   * {@linkcode SharedBudgets.spendLogin} when NATS cannot be reached: from what this node last saw, kept
   * here only (hold the login's locks).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` when admitted (and counted here), else whose budget is spent and for how long.
   */
  spendAlone(address: string, account: string, now: number, options: LoginOptions): LoginRefusal | null {
    const keys = loginKeys(address, account, options);
    const budgets = [keys.account, ...(keys.source ? [keys.source] : [])];
    const records = this.#store.knownAll([keys.pair, ...budgets]);
    this.#store.setLocal(keys.pair, { ...records.get(keys.pair), knownAt: now });
    const refusal = this.spendVerdict(address, account, now, options, records);
    if (refusal) return refusal;
    for (const key of budgets) this.#store.setLocal(key, this.spent(key, records.get(key)!, now));
    return null;
  }

  /**
   * Whether a correct login may be counted now, from its records (see `LoginBudget.spend`: unlike
   * {@linkcode SharedBudgets.checkFrom}, the account's budget binds a source that never logged in to it).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @param records The records of the login's account and (without a device token) source.
   * @returns `null` to go ahead, else whose budget is spent and for how long.
   */
  spendVerdict(
    address: string,
    account: string,
    now: number,
    options: LoginOptions,
    records: Map<string, LimitRecord>,
  ): LoginRefusal | null {
    return this.#spendVerdictOf(loginKeys(address, account, options), records, now);
  }

  #spendVerdictOf(keys: LoginKeys, records: Map<string, LimitRecord>, now: number): LoginRefusal | null {
    const waits = this.#waits(keys, records, now);
    return loginVerdict(waits.source, waits.account);
  }

  /**
   * A source's or an account's record with one login taken from its budget.
   *
   * @param key The record's key (`s.…` or `a.…`).
   * @param record The record.
   * @param now Current time in ms.
   * @returns The new record.
   */
  spent(key: string, record: LimitRecord, now: number): LimitRecord {
    return { ...record, logins: bucketTake(record.logins, now, this.#loginRate(key)).state };
  }

  async #spendOnline(keys: LoginKeys, budgets: string[], now: number): Promise<LoginRefusal | null> {
    // The source knows the account from now on (written again once half its time has passed).
    const marking = this.markFresh(this.#store.seen(keys.pair), now)
      ? Promise.resolve(null)
      : this.#store.modify(
        keys.pair,
        now,
        (record) => ({ record: { ...record, knownAt: now }, result: null }),
      );
    // Heard at once: it may fail before the budgets' writes are done, and a failure nobody listens for ends
    // the process. It is awaited below all the same.
    marking.catch(() => {});
    try {
      return await this.#store.writeAll(budgets, now, {
        refusal: (records) => this.#spendVerdictOf(keys, records, now),
        next: (key, record) => this.spent(key, record, now),
        undo: (key, record) => this.givenBack(key, record, now),
      });
    } finally {
      await marking;
    }
  }

  /**
   * A budget with the login just taken given back.
   *
   * @param key The record's key (`s.…` or `a.…`).
   * @param record The record.
   * @param now Current time in ms.
   * @returns The new record.
   */
  givenBack(key: string, record: LimitRecord, now: number): LimitRecord {
    const rate = this.#loginRate(key);
    const tokens = Math.min(rate.burst, bucketTokens(record.logins, now, rate) + 1);
    const state: BucketState = { tokens, at: now };
    return { ...record, logins: state };
  }
}
