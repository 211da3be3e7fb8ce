/**
 * The abuse limits of every node, kept in one JetStream key-value bucket on
 * NATS, with the semantics of the in-process ones (`RateLimiter`,
 * `TokenBucket`, `LoginBudget`; the same pure functions compute both): a
 * failure on any node counts on every node, so N nodes give an attacker no
 * more guesses than one.
 *
 * **Keys.** One key per source (IPv6 by /64), account, (source, account) pair
 * and device token (`s.…`, `a.…`, `p.….…`, `t.…`, names encoded by
 * `busToken`). A key's record (lib/cluster/_limit_record.ts) holds its
 * failures, the proofs each node is checking against it, and the budgets of
 * the same key: a source's registrations and logins, an account's logins, and
 * whether a pair has logged in. The bucket's entries expire the longest time
 * any of this matters after their last write (the counters' forget time, at
 * least an hour), which bounds what it keeps; the node's mirror of what it has
 * seen holds at most 100,000 keys, as many as the in-process counters.
 *
 * **A proof's gate and its count are one step, on every node.** Every write is
 * a compare-and-swap on the key's revision. `beginProof` computes the gate from
 * the records of its keys, then writes to each key this node's count of proofs
 * under way, raised by one, each write conditional on the revision the gate was
 * computed from; a key that changed meanwhile is read again and the gate
 * computed again, and a gate that now refuses takes back what was written. So
 * every proof that passes has been counted, on each key, after every proof that
 * key had already let through: proofs raced on several nodes cannot pass more
 * than one gate allows. A node's count on a key carries a lease (`proofLeaseMs`,
 * 30 s), renewed by its every write there: the count of a node that died or
 * lost the bus mid-proof stops counting when the lease runs out.
 *
 * **Cost.** Questions that change nothing (`retryAfter`, `checkLogin`,
 * `loginGate`) read their keys in parallel, fresh; `loginGate` asks the login
 * budgets and the backoff of a `LOGIN` without a device token from one read of
 * their three keys (the same pair, source and account). What changes writes
 * each key once, from the revision last seen here (no read first unless it
 * turns out stale), and only what changed. A node's own requests on one key
 * never race (they take turns), so conflicts come only from other nodes. Each
 * read or write is one request and its reply: a login with a password makes 3
 * reads and 8 writes (9 the first time its source logs in to the account), in
 * four rounds of parallel requests (tests/cluster/nats_abuse_limits_cost_test.ts
 * counts them); a login with a device token 3 reads and 3 or 4 writes; a wrong
 * password 3 reads and 6 writes.
 *
 * **When NATS cannot be reached** (no connection, or a request unanswered
 * within `timeoutMs`; then for `retryMs` the node does not ask again), the node
 * decides alone from what it knows: the records it last saw (its mirror), the
 * proofs it is checking itself, and the failures it counted since. It never
 * fails open:
 * - An attempt to prove a password goes ahead only when it is one of the free
 *   ones by that knowledge (no counter it meets is past `failures_before_backoff`,
 *   counting proofs under way; a source without failures under its parallel
 *   bound). One that must wait by that knowledge gets `RATE_LIMITED`; any other
 *   (past the free ones, its backoff over) gets `UNAVAILABLE`, since only the
 *   shared counters can say how far past it is.
 * - The failures and successes it decides are kept (at most `maxPending`; past
 *   that, proofs get `UNAVAILABLE`) and written to the bucket, in order, as soon
 *   as NATS answers again, before anything else is asked there. No request
 *   waits for them: until the last is written the node goes on deciding alone,
 *   from a mirror that counts every outcome not yet written.
 * - Registrations get `UNAVAILABLE`.
 * - The login budgets (which bound load, not guesses) are spent by each node on
 *   its own from the records it last saw; nothing of that is sent later.
 *
 * So while the bus is down each node gives a key at most its free failures
 * beyond what it had seen, and they count everywhere once the bus is back.
 *
 * All nodes must run with the same limit settings and clocks in step (NTP):
 * times in the records are the nodes' own.
 *
 * @module
 */

import { gateVerdict, liveCounter } from "../auth/failure_gate.ts";
import type { GateCounter, GateVerdict } from "../auth/failure_gate.ts";
import type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import { sourceKey } from "../auth/rate_limiter.ts";
import type { AttemptOptions, RateLimiterOptions } from "../auth/rate_limiter.ts";
import { bucketRate } from "../auth/token_bucket.ts";
import type { BucketRate } from "../auth/token_bucket.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { limitOptions } from "../server/local_parts.ts";
import type { LimitSettings } from "../server/local_parts.ts";
import type { Logger } from "../server/logger.ts";
import type { AbuseLimits, LoginGate } from "../server/shared_parts.ts";
import type { LimitRecord } from "./_limit_record.ts";
import { LimitStore } from "./_limit_store.ts";
import { SharedBudgets } from "./_shared_budgets.ts";
import { busToken } from "./nats_bus.ts";
import type { NatsBus } from "./nats_bus.ts";

/** Options of {@linkcode NatsAbuseLimits} beyond the configuration's settings. */
export interface NatsAbuseLimitsOptions {
  /** Longest wait for one request to NATS, in ms (default 1000). */
  timeoutMs?: number;
  /** After a request failed, how long the node decides alone before asking NATS again, in ms (default 1000). */
  retryMs?: number;
  /** How long a node's count of proofs under way holds without a write from it, in ms (default 30,000). */
  proofLeaseMs?: number;
  /** Outcomes decided while NATS was unreachable, kept for it (default 10,000). */
  maxPending?: number;
  /** Bucket name under the bus prefix (default `limits`). */
  bucket?: string;
  /** Where the loss and the return of NATS are told. */
  log?: Logger;
}

/** The keys an attempt is counted under: a device token's, or its pair's, source's and account's. */
type AttemptKeys = { token: string } | { pair: string; source: string; account: string };

function attemptKeys(address: string, account: string, options: AttemptOptions): AttemptKeys {
  if (options.deviceToken !== undefined) return { token: `t.${busToken(options.deviceToken)}` };
  const source = busToken(sourceKey(address));
  const name = busToken(account);
  return { pair: `p.${source}.${name}`, source: `s.${source}`, account: `a.${name}` };
}

function keyList(keys: AttemptKeys): string[] {
  return "token" in keys ? [keys.token] : [keys.pair, keys.source, keys.account];
}

function unavailable(): ProtocolError {
  return new ProtocolError(
    "UNAVAILABLE",
    "Service unavailable: the servers cannot count login attempts now; try again later",
  );
}

/**
 * The abuse limits of all nodes, on NATS (see the module doc).
 *
 * @example
 * ```ts ignore
 * import { NatsBus } from "./nats_bus.ts";
 * import { NatsAbuseLimits } from "./nats_abuse_limits.ts";
 * import { loadServerConfig } from "../server/server_config.ts";
 * const bus = await NatsBus.connect({ servers: ["nats://127.0.0.1:4222"], nodeId: "node-1" });
 * const limits = new NatsAbuseLimits(bus, await loadServerConfig({ file: "/dev/null" }));
 * await limits.ready();
 * if ((await limits.beginProof("10.0.0.1", "alice", Date.now())) === 0) {
 *   await limits.endProof("10.0.0.1", "alice", Date.now(), false);
 * }
 * await limits.close();
 * await bus.close();
 * ```
 */
export class NatsAbuseLimits implements AbuseLimits {
  #limiter: RateLimiterOptions;
  #store: LimitStore;
  #budgets: SharedBudgets;

  /**
   * Count on NATS.
   *
   * @param bus This node's connection to NATS (the caller closes it, after {@linkcode close}).
   * @param settings The limit settings of the configuration (every node must have the same).
   * @param options Timeouts, lease, bounds, bucket name, log.
   */
  constructor(bus: NatsBus, settings: LimitSettings, options: NatsAbuseLimitsOptions = {}) {
    const limits = limitOptions(settings);
    this.#limiter = limits.limiter;
    const rates = {
      registrations: bucketRate(limits.registrations.perMinute, limits.registrations.burst),
      sourceLogins: bucketRate(limits.logins.perSourcePerMinute),
      accountLogins: bucketRate(limits.logins.perAccountPerMinute),
      knownForMs: limits.limiter.forgetAfterMs,
    };
    const leaseMs = options.proofLeaseMs ?? 30_000;
    const refill = (rate: BucketRate) => Math.ceil(rate.burst / rate.perMs);
    this.#store = new LimitStore(bus, {
      bucket: options.bucket ?? "limits",
      // As long as anything in a record matters after its last write.
      ttlMs: Math.max(
        limits.limiter.forgetAfterMs,
        rates.knownForMs,
        leaseMs,
        refill(rates.registrations),
        refill(rates.sourceLogins),
        refill(rates.accountLogins),
      ),
      timeoutMs: options.timeoutMs ?? 1000,
      retryMs: options.retryMs ?? 1000,
      leaseMs,
      maxPending: options.maxPending ?? 10_000,
      maxEntries: limits.limiter.maxEntries,
      forgetAfterMs: limits.limiter.forgetAfterMs,
      tidy: (key, record, now) => this.#tidy(key, record, now),
      log: options.log,
    });
    this.#budgets = new SharedBudgets(this.#store, rates, unavailable);
  }

  /** A record as it is worth keeping: no forgotten failures, no full budget, no stale pair. */
  #tidy(key: string, record: LimitRecord, now: number): LimitRecord {
    const out = this.#budgets.tidy(key, record, now);
    const failures = liveCounter(record.failures, now, this.#limiter.forgetAfterMs);
    if (failures && failures.failures > 0) out.failures = failures;
    if (record.proofs) out.proofs = record.proofs;
    return out;
  }

  // --- the failure gate -----------------------------------------------------------------------------

  #verdict(keys: AttemptKeys, records: Map<string, LimitRecord>, now: number): GateVerdict {
    const gate = (key: string): GateCounter => {
      const record = records.get(key) ?? {};
      return {
        counter: liveCounter(record.failures, now, this.#limiter.forgetAfterMs),
        checking: this.#store.checking(key, record, now),
      };
    };
    if ("token" in keys) return gateVerdict(this.#limiter, { token: gate(keys.token) }, now);
    return gateVerdict(this.#limiter, {
      pair: gate(keys.pair),
      source: gate(keys.source),
      account: () => gate(keys.account),
    }, now);
  }

  /** Alone: the wait the node knows of, or go ahead for a free attempt, or `UNAVAILABLE`. */
  #aloneVerdict(keys: AttemptKeys, now: number): number {
    const verdict = this.#verdict(keys, this.#store.knownAll(keyList(keys)), now);
    if (verdict.waitMs > 0) return verdict.waitMs;
    if (!verdict.free) throw unavailable();
    return 0;
  }

  #enter(now: number): void {
    this.#store.tick(now);
    this.#store.catchUp();
  }

  async retryAfter(
    address: string,
    account: string,
    now: number,
    options: AttemptOptions = {},
  ): Promise<number> {
    this.#enter(now);
    const keys = attemptKeys(address, account, options);
    return await this.#store.answer(
      async () => this.#verdict(keys, await this.#store.readAll(keyList(keys)), now).waitMs,
      () => this.#aloneVerdict(keys, now),
    );
  }

  async beginProof(
    address: string,
    account: string,
    now: number,
    options: AttemptOptions = {},
  ): Promise<number> {
    this.#enter(now);
    const keys = attemptKeys(address, account, options);
    return await this.#locked(keys, (names) =>
      this.#store.answer(
        async () =>
          await this.#store.writeAll(names, now, {
            refusal: (records) => this.#verdict(keys, records, now).waitMs || null,
            next: (_, record) => record,
            adding: 1,
          }) ?? 0,
        () => {
          if (this.#store.full) throw unavailable();
          const wait = this.#aloneVerdict(keys, now);
          if (wait === 0) { for (const key of names) this.#store.adjust(key, 1); }
          return wait;
        },
      ));
  }

  async endProof(
    address: string,
    account: string,
    now: number,
    correct: boolean,
    options: AttemptOptions = {},
  ): Promise<void> {
    this.#enter(now);
    const keys = attemptKeys(address, account, options);
    await this.#locked(keys, (names) => {
      for (const key of names) this.#store.adjust(key, -1);
      return this.#store.answer(
        () => this.#endOnline(keys, now, correct),
        () => this.#endAlone(keys, now, correct),
      );
    });
  }

  /** Run `fn` on an attempt's keys while holding this node's locks on them. */
  #locked<T>(keys: AttemptKeys, fn: (names: string[]) => Promise<T>): Promise<T> {
    const names = keyList(keys);
    return this.#store.locked(names, () => fn(names));
  }

  async #endOnline(keys: AttemptKeys, now: number, correct: boolean): Promise<void> {
    const store = this.#store;
    if ("token" in keys) {
      await store.writeChange(keys.token, { kind: correct ? "clear" : "fail" }, now);
      return;
    }
    const others = [keys.source, keys.account];
    if (!correct) {
      await Promise.all(keyList(keys).map((key) => store.writeChange(key, { kind: "fail" }, now)));
      return;
    }
    // A success forgives its pair's failures on the source and the account: how many is known once the
    // pair is written. With none seen there, the source and account are written meanwhile.
    const seen = store.seen(keys.pair)?.failures?.failures ?? 0;
    const early = Promise.all(
      seen === 0 ? others.map((key) => store.writeChange(key, { kind: "forgive", failures: 0 }, now)) : [],
    );
    // Heard at once: should the pair's write fail first, nobody would await these, and a failure nobody
    // listens for ends the process.
    early.catch(() => {});
    const cleared = await store.writeChange(keys.pair, { kind: "clear" }, now);
    await early;
    if (seen > 0 || cleared > 0) {
      await Promise.all(
        others.map((key) => store.writeChange(key, { kind: "forgive", failures: cleared }, now)),
      );
    }
  }

  #endAlone(keys: AttemptKeys, now: number, correct: boolean): void {
    const store = this.#store;
    if ("token" in keys) {
      store.changeAlone(keys.token, { kind: correct ? "clear" : "fail" }, now);
      return;
    }
    if (!correct) {
      for (const key of keyList(keys)) store.changeAlone(key, { kind: "fail" }, now);
      return;
    }
    const others = [keys.source, keys.account];
    const cleared = store.changeAlone(keys.pair, { kind: "clear" }, now, others);
    // Here at once by what this node knows; in the bucket by what the pair holds there when it is written.
    for (const key of others) {
      const known = store.knownAll([key]).get(key)!;
      store.setLocal(key, store.changed(known, { kind: "forgive", failures: cleared }, now).record);
    }
  }

  // --- budgets --------------------------------------------------------------------------------------

  async takeRegistration(address: string, now: number): Promise<number> {
    this.#enter(now);
    return await this.#budgets.takeRegistration(address, now);
  }

  async checkLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    this.#enter(now);
    return await this.#budgets.checkLogin(address, account, now, options);
  }

  async loginGate(address: string, account: string, now: number): Promise<LoginGate> {
    this.#enter(now);
    const keys = attemptKeys(address, account, {});
    const names = keyList(keys);
    const budgets = this.#budgets;
    // The budgets' keys and the backoff's are the same three (pair, source, account): read once for both.
    return await this.#store.answer(
      async () => {
        const records = await this.#store.readAll(names);
        const refusal = budgets.checkFrom(address, account, now, {}, records);
        return { refusal, waitMs: refusal ? 0 : this.#verdict(keys, records, now).waitMs };
      },
      () => {
        const refusal = budgets.checkFrom(address, account, now, {}, this.#store.knownAll(names));
        return { refusal, waitMs: refusal ? 0 : this.#aloneVerdict(keys, now) };
      },
    );
  }

  async spendLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    this.#enter(now);
    return await this.#budgets.spendLogin(address, account, now, options);
  }

  /**
   * Make or open the bucket now, so a node that cannot reach NATS at start can say so before it serves
   * (later, the limits decide alone instead).
   *
   * @throws {BusUnavailableError} When the bucket cannot be made or opened within the timeout.
   */
  async ready(): Promise<void> {
    await this.#store.ready();
  }

  /** Outcomes decided while NATS was unreachable and not yet written to it. */
  get pending(): number {
    return this.#store.pending;
  }

  /** Stop listening to the bus, after writing what was decided alone if NATS answers (the bus stays open). */
  async close(): Promise<void> {
    await this.#store.close();
  }
}
