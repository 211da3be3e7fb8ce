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
 * seen is bounded by `maxEntries`.
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
 * **Cost.** Questions that change nothing (`retryAfter`, `checkLogin`) read
 * their keys in parallel, fresh. What changes writes each key once, from the
 * revision last seen here (no read first unless it turns out stale), and only
 * what changed. A node's own requests on one key never race (they take turns),
 * so conflicts come only from other nodes. Each read or write is one request
 * and its reply: a login with a password makes 6 reads and 8 writes (9 the
 * first time its source logs in to the account), in five rounds of parallel
 * requests; a login with a device token 3 reads and 3 or 4 writes; a wrong
 * password 6 reads and 6 writes.
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
 *   as NATS answers again, before anything else is asked there.
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

import {
  counterAfterFailure,
  counterAfterForgiving,
  gateVerdict,
  liveCounter,
} from "../auth/failure_gate.ts";
import type { GateCounter, GateVerdict } from "../auth/failure_gate.ts";
import { loginVerdict } from "../auth/login_budget.ts";
import type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import { sourceKey } from "../auth/rate_limiter.ts";
import type { AttemptOptions, RateLimiterOptions } from "../auth/rate_limiter.ts";
import { bucketRate, bucketTake, bucketTokens, bucketWait } from "../auth/token_bucket.ts";
import type { BucketRate, BucketState } from "../auth/token_bucket.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { limitOptions } from "../server/local_parts.ts";
import type { LimitSettings } from "../server/local_parts.ts";
import type { Logger } from "../server/logger.ts";
import type { AbuseLimits } from "../server/shared_parts.ts";
import { KeyLocks } from "./_key_locks.ts";
import { KvCells } from "./_kv_cells.ts";
import type { Cell } from "./_kv_cells.ts";
import { decodeRecord, encodeRecord, othersChecking, withProofs } from "./_limit_record.ts";
import type { LimitRecord } from "./_limit_record.ts";
import { busToken, BusUnavailableError } from "./nats_bus.ts";
import type { KV, NatsBus } from "./nats_bus.ts";

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

/** A change of one key's failures. */
type Change = { kind: "fail" } | { kind: "forgive"; failures: number } | { kind: "clear" };

/** An outcome decided while NATS was unreachable, for one key, to be written when it answers. */
interface PendingChange {
  key: string;
  change: Change;
  now: number;
  /** A cleared pair: forgive the failures it held on these keys (its source's and account's). */
  thenForgive?: string[];
}

const NOT_REACHED = Symbol("not reached");

/**
 * Most writes of one key one request tries before it gives up (as if NATS did not answer, so the node
 * decides alone): other nodes changed the key every time in between.
 */
const MAX_ROUNDS = 32;

/** The error of a key other nodes keep changing faster than this node can write it. */
function contended(key: string): BusUnavailableError {
  return new BusUnavailableError(`Too many nodes writing ${key} at once: gave up after ${MAX_ROUNDS} tries`);
}

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

function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
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
 * if ((await limits.beginProof("10.0.0.1", "alice", Date.now())) === 0) {
 *   await limits.endProof("10.0.0.1", "alice", Date.now(), false);
 * }
 * await limits.close();
 * await bus.close();
 * ```
 */
export class NatsAbuseLimits implements AbuseLimits {
  #bus: NatsBus;
  #limiter: RateLimiterOptions;
  #registrations: BucketRate;
  #sourceLogins: BucketRate;
  #accountLogins: BucketRate;
  /** How long a pair that logged in counts as knowing its account. */
  #knownForMs: number;
  #leaseMs: number;
  #retryMs: number;
  #maxPending: number;
  #log: Logger | undefined;
  #cells: KvCells<LimitRecord>;
  #locks = new KeyLocks();
  /** This instance's id in the records (a restarted node is another one). */
  readonly #node = randomId();
  /** Proofs this node is checking, per key. */
  #inflight = new Map<string, number>();
  #pending: PendingChange[] = [];
  #flushing: Promise<boolean> | null = null;
  /** Until when (performance.now()) the node decides alone after a failed request. */
  #downUntil = 0;
  #reported = false;
  /** The latest time an operation was given: the clock of writes the node makes on its own. */
  #clock = 0;
  #stopListening: () => void;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Count on NATS.
   *
   * @param bus This node's connection to NATS (the caller closes it, after {@linkcode close}).
   * @param settings The limit settings of the configuration (every node must have the same).
   * @param options Timeouts, lease, bounds, bucket name, log.
   */
  constructor(bus: NatsBus, settings: LimitSettings, options: NatsAbuseLimitsOptions = {}) {
    this.#bus = bus;
    const limits = limitOptions(settings);
    this.#limiter = limits.limiter;
    this.#registrations = bucketRate(limits.registrations.perMinute, limits.registrations.burst);
    this.#sourceLogins = bucketRate(limits.logins.perSourcePerMinute);
    this.#accountLogins = bucketRate(limits.logins.perAccountPerMinute);
    this.#knownForMs = limits.limiter.forgetAfterMs;
    this.#leaseMs = options.proofLeaseMs ?? 30_000;
    this.#retryMs = options.retryMs ?? 1000;
    this.#maxPending = options.maxPending ?? 10_000;
    this.#log = options.log;
    const refill = (rate: BucketRate) => Math.ceil(rate.burst / rate.perMs);
    const ttlMs = Math.max(
      this.#limiter.forgetAfterMs,
      this.#knownForMs,
      this.#leaseMs,
      refill(this.#registrations),
      refill(this.#sourceLogins),
      refill(this.#accountLogins),
    );
    const bucket = options.bucket ?? "limits";
    let checked = false;
    const open = async () => {
      const kv = await bus.kv(bucket, { ttlMs, history: 1 });
      if (!checked) checked = await this.#keepLongEnough(kv, ttlMs);
      return kv;
    };
    this.#cells = new KvCells<LimitRecord>(open, {
      codec: { decode: decodeRecord, encode: encodeRecord, empty: () => ({}) },
      timeoutMs: options.timeoutMs ?? 1000,
      maxEntries: this.#limiter.maxEntries,
    });
    this.#stopListening = bus.onConnection((up) => {
      if (up) void this.#flush();
    });
  }

  /**
   * The bucket keeps entries as long as the node that made it needed; a node whose settings need longer
   * (a larger `backoff_max`) raises it, or counters would be dropped before they are forgotten. Never
   * lowered: another node may need it.
   *
   * @returns Whether the bucket answered (else it is asked again next time).
   */
  async #keepLongEnough(kv: KV, ttlMs: number): Promise<boolean> {
    let status;
    try {
      status = await kv.status();
    } catch {
      return false;
    }
    try {
      if (status.ttl === 0 || status.ttl >= ttlMs) return true;
      const config = { ...status.streamInfo.config, max_age: ttlMs * 1_000_000 };
      const reply = await this.#bus.nc.request(
        `$JS.API.STREAM.UPDATE.${config.name}`,
        JSON.stringify(config),
        {
          timeout: 5000,
        },
      );
      const answer = reply.json<{ error?: { description?: string } }>();
      if (answer.error) throw new Error(answer.error.description ?? "refused");
      this.#log?.info("limits_bucket_ttl_raised", { from_ms: status.ttl, to_ms: ttlMs });
    } catch (err) {
      this.#log?.warn("limits_bucket_ttl_short", { need_ms: ttlMs, error: (err as Error).message });
    }
    return true;
  }

  // --- answering from NATS, or alone -------------------------------------------------------------------

  #tick(now: number): void {
    if (now > this.#clock) this.#clock = now;
  }

  #usable(): boolean {
    return this.#bus.connected && performance.now() >= this.#downUntil;
  }

  /**
   * Before anything is asked of NATS, write what was decided alone. Called holding no lock (the writing
   * takes the locks of the keys it writes).
   */
  async #catchUp(): Promise<void> {
    if (this.#pending.length > 0 && this.#usable()) await this.#flush();
  }

  /**
   * Run `work` against NATS, or say it could not be reached (then the caller decides alone): also while
   * outcomes decided alone are still to be written, so nothing is decided on counters that lack them.
   */
  async #online<R>(work: () => Promise<R>): Promise<R | typeof NOT_REACHED> {
    if (!this.#usable() || this.#pending.length > 0) return NOT_REACHED;
    try {
      const result = await work();
      this.#up();
      return result;
    } catch (err) {
      // Anything else that failed on the way is a fault here, told as such; the node decides alone all
      // the same rather than fail the request (or lose an outcome).
      if (!(err instanceof BusUnavailableError)) {
        this.#log?.error("limits_fault", { node: this.#node, error: (err as Error)?.message ?? String(err) });
      }
      this.#down(err instanceof Error ? err : new Error(String(err)));
      return NOT_REACHED;
    }
  }

  #down(err: Error): void {
    this.#downUntil = performance.now() + this.#retryMs;
    if (this.#reported) return;
    this.#reported = true;
    this.#log?.warn("limits_bus_unavailable", { node: this.#node, error: err.message });
  }

  #up(): void {
    if (!this.#reported) return;
    this.#reported = false;
    this.#log?.info("limits_bus_back", { node: this.#node, pending: this.#pending.length });
  }

  /** Write what was decided alone, in order; `false` when NATS failed again (the rest is kept). */
  #flush(): Promise<boolean> {
    this.#flushing ??= (async () => {
      try {
        while (this.#pending.length > 0) {
          const next = this.#pending[0]!;
          const release = await this.#locks.acquire([next.key]);
          try {
            const cleared = await this.#writeChange(next.key, next.change, next.now);
            this.#pending.shift();
            const forgive = next.thenForgive ?? [];
            if (cleared > 0) {
              this.#pending.unshift(
                ...forgive.map((key) => ({
                  key,
                  change: { kind: "forgive", failures: cleared } as const,
                  now: next.now,
                })),
              );
            }
          } finally {
            release();
          }
        }
        return true;
      } catch (err) {
        // Kept for the next try, whatever failed: meanwhile the node decides alone (never fails open).
        this.#down(err instanceof Error ? err : new Error(String(err)));
        this.#retryLater();
        return false;
      } finally {
        this.#flushing = null;
      }
    })();
    return this.#flushing;
  }

  /** Try writing what was decided alone again in a while, should no request come to do it. */
  #retryLater(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#pending.length > 0 && this.#usable()) void this.#flush();
    }, this.#retryMs);
    Deno.unrefTimer(this.#retryTimer as unknown as number);
  }

  // --- records --------------------------------------------------------------------------------------

  #count(key: string): number {
    return this.#inflight.get(key) ?? 0;
  }

  #adjust(key: string, by: number): void {
    const n = this.#count(key) + by;
    if (n > 0) this.#inflight.set(key, n);
    else this.#inflight.delete(key);
  }

  /** A record as it is worth keeping: no forgotten failures, no full budget, no stale pair. */
  #tidy(key: string, record: LimitRecord, now: number): LimitRecord {
    const out: LimitRecord = {};
    const failures = liveCounter(record.failures, now, this.#limiter.forgetAfterMs);
    if (failures && failures.failures > 0) out.failures = failures;
    if (record.proofs) out.proofs = record.proofs;
    const loginRate = key.startsWith("s.") ? this.#sourceLogins : this.#accountLogins;
    if (record.logins && bucketTokens(record.logins, now, loginRate) < loginRate.burst) {
      out.logins = record.logins;
    }
    if (
      record.registrations &&
      bucketTokens(record.registrations, now, this.#registrations) < this.#registrations.burst
    ) out.registrations = record.registrations;
    if (record.knownAt !== undefined && now - record.knownAt <= this.#knownForMs) {
      out.knownAt = record.knownAt;
    }
    return out;
  }

  /** The record to write: this node's proofs under way on the key, lease renewed, tidied. */
  #toWrite(key: string, record: LimitRecord, now: number, extra = 0): LimitRecord {
    return this.#tidy(
      key,
      withProofs(record, this.#node, this.#count(key) + extra, now + this.#leaseMs, now),
      now,
    );
  }

  /** Read keys now, in parallel. */
  async #readAll(keys: readonly string[]): Promise<Map<string, LimitRecord>> {
    const cells = await Promise.all(keys.map((key) => this.#cells.read(key)));
    return new Map(keys.map((key, i) => [key, cells[i]!.record]));
  }

  /** The records this node last saw (the empty record for a key it has not). */
  #knownAll(keys: readonly string[]): Map<string, LimitRecord> {
    return new Map(keys.map((key) => [key, this.#cells.known(key)?.record ?? {}]));
  }

  /**
   * Change one key by compare-and-swap, starting from the revision last seen (the caller holds its lock).
   * `change` returns the new record, or `undefined` when nothing is to be written (then its result is
   * trusted only from a fresh read).
   */
  async #modify<R>(
    key: string,
    now: number,
    change: (record: LimitRecord) => { record?: LimitRecord; result: R },
  ): Promise<R> {
    let cell = this.#cells.known(key, { fromBus: true });
    let fresh = false;
    if (!cell) {
      cell = await this.#cells.read(key);
      fresh = true;
    }
    for (let round = 1;; round++) {
      if (round > MAX_ROUNDS) throw contended(key);
      const { record, result } = change(cell.record);
      if (record === undefined) {
        if (fresh) return result;
      } else if (await this.#cells.write(key, this.#toWrite(key, record, now), cell.rev)) {
        return result;
      }
      cell = await this.#cells.read(key);
      fresh = true;
    }
  }

  /** Apply a change of failures to a record; also says how many failures a `clear` took away. */
  #changed(record: LimitRecord, change: Change, now: number): { record: LimitRecord; cleared: number } {
    const out = { ...record };
    let cleared = 0;
    if (change.kind === "fail") {
      out.failures = counterAfterFailure(liveCounter(record.failures, now, this.#limiter.forgetAfterMs), now);
    } else if (change.kind === "forgive") {
      const left = counterAfterForgiving(record.failures, change.failures);
      if (left) out.failures = left;
      else delete out.failures;
    } else {
      cleared = record.failures?.failures ?? 0;
      delete out.failures;
    }
    return { record: out, cleared };
  }

  /** Write a change of one key's failures (the caller holds its lock); returns what a `clear` took away. */
  #writeChange(key: string, change: Change, now: number): Promise<number> {
    return this.#modify(key, Math.max(now, this.#clock), (record) => {
      const { record: next, cleared } = this.#changed(record, change, now);
      return { record: next, result: cleared };
    });
  }

  // --- the failure gate -----------------------------------------------------------------------------

  #verdict(keys: AttemptKeys, records: Map<string, LimitRecord>, now: number): GateVerdict {
    const gate = (key: string): GateCounter => {
      const record = records.get(key) ?? {};
      return {
        counter: liveCounter(record.failures, now, this.#limiter.forgetAfterMs),
        checking: othersChecking(record, this.#node, now) + this.#count(key),
      };
    };
    if ("token" in keys) return gateVerdict(this.#limiter, { token: gate(keys.token) }, now);
    return gateVerdict(this.#limiter, {
      pair: gate(keys.pair),
      source: gate(keys.source),
      account: () => gate(keys.account),
    }, now);
  }

  /** Alone: the wait it knows of, or go ahead for a free attempt, or `UNAVAILABLE`. */
  #aloneVerdict(keys: AttemptKeys, now: number): number {
    const verdict = this.#verdict(keys, this.#knownAll(keyList(keys)), now);
    if (verdict.waitMs > 0) return verdict.waitMs;
    if (!verdict.free) throw unavailable();
    return 0;
  }

  async retryAfter(
    address: string,
    account: string,
    now: number,
    options: AttemptOptions = {},
  ): Promise<number> {
    this.#tick(now);
    await this.#catchUp();
    const keys = attemptKeys(address, account, options);
    return await this.#answer(
      async () => this.#verdict(keys, await this.#readAll(keyList(keys)), now).waitMs,
      () => this.#aloneVerdict(keys, now),
    );
  }

  async #answer<R>(online: () => Promise<R>, alone: () => R | Promise<R>): Promise<R> {
    const result = await this.#online(online);
    return result === NOT_REACHED ? await alone() : result;
  }

  async beginProof(
    address: string,
    account: string,
    now: number,
    options: AttemptOptions = {},
  ): Promise<number> {
    this.#tick(now);
    await this.#catchUp();
    const keys = attemptKeys(address, account, options);
    const names = keyList(keys);
    const release = await this.#locks.acquire(names);
    try {
      return await this.#answer(() => this.#beginOnline(keys, now), () => {
        if (this.#pending.length >= this.#maxPending) throw unavailable();
        const wait = this.#aloneVerdict(keys, now);
        if (wait === 0) { for (const key of names) this.#adjust(key, 1); }
        return wait;
      });
    } finally {
      release();
    }
  }

  async #beginOnline(keys: AttemptKeys, now: number): Promise<number> {
    const names = keyList(keys);
    const cells = new Map<string, Cell<LimitRecord>>();
    const fresh = new Set<string>();
    const refresh = async (key: string) => {
      cells.set(key, await this.#cells.read(key));
      fresh.add(key);
    };
    await Promise.all(names.map((key) => {
      const known = this.#cells.known(key, { fromBus: true });
      if (known) cells.set(key, known);
      return known ? undefined : refresh(key);
    }));
    const records = () => new Map([...cells].map(([key, cell]) => [key, cell.record]));
    let wait = this.#verdict(keys, records(), now).waitMs;
    if (wait > 0) {
      // What this node saw may be old: a refusal is given only on what the bucket holds now.
      const stale = names.filter((key) => !fresh.has(key));
      if (stale.length === 0) return wait;
      await Promise.all(stale.map(refresh));
      wait = this.#verdict(keys, records(), now).waitMs;
      if (wait > 0) return wait;
    }
    const written: string[] = [];
    let refused = 0;
    const reserve = async (key: string) => {
      for (let round = 1;; round++) {
        if (round > MAX_ROUNDS) throw contended(key);
        const cell = cells.get(key)!;
        if (await this.#cells.write(key, this.#toWrite(key, cell.record, now, 1), cell.rev)) {
          written.push(key);
          return;
        }
        await refresh(key);
        if (refused > 0) return;
        const again = this.#verdict(keys, records(), now).waitMs;
        if (again > 0) {
          refused = Math.max(refused, again);
          return;
        }
      }
    };
    const results = await Promise.allSettled(names.map(reserve));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed || refused > 0) {
      // Take back what was written; should that fail too, the lease ends it.
      await Promise.allSettled(
        written.map((key) => this.#modify(key, now, (record) => ({ record, result: 0 }))),
      );
      if (failed) throw failed.reason;
      return refused;
    }
    for (const key of names) this.#adjust(key, 1);
    return 0;
  }

  async endProof(
    address: string,
    account: string,
    now: number,
    correct: boolean,
    options: AttemptOptions = {},
  ): Promise<void> {
    this.#tick(now);
    await this.#catchUp();
    const keys = attemptKeys(address, account, options);
    const names = keyList(keys);
    const release = await this.#locks.acquire(names);
    try {
      for (const key of names) this.#adjust(key, -1);
      await this.#answer(() => this.#endOnline(keys, now, correct), () => this.#endAlone(keys, now, correct));
    } finally {
      release();
    }
  }

  async #endOnline(keys: AttemptKeys, now: number, correct: boolean): Promise<void> {
    if ("token" in keys) {
      await this.#writeChange(keys.token, { kind: correct ? "clear" : "fail" }, now);
      return;
    }
    const others = [keys.source, keys.account];
    if (!correct) {
      await Promise.all(keyList(keys).map((key) => this.#writeChange(key, { kind: "fail" }, now)));
      return;
    }
    // A success forgives its pair's failures on the source and the account: how many is known once the
    // pair is written. With none seen there, the source and account are written meanwhile.
    const seen = this.#cells.known(keys.pair)?.record.failures?.failures ?? 0;
    const early = seen === 0
      ? others.map((key) => this.#writeChange(key, { kind: "forgive", failures: 0 }, now))
      : [];
    const cleared = await this.#writeChange(keys.pair, { kind: "clear" }, now);
    await Promise.all(early);
    if (seen > 0 || cleared > 0) {
      await Promise.all(
        others.map((key) => this.#writeChange(key, { kind: "forgive", failures: cleared }, now)),
      );
    }
  }

  #endAlone(keys: AttemptKeys, now: number, correct: boolean): void {
    const local = (key: string, change: Change, thenForgive?: string[]): number => {
      const { record, cleared } = this.#changed(this.#cells.known(key)?.record ?? {}, change, now);
      this.#cells.setLocal(key, record);
      this.#pending.push({ key, change, now, ...(thenForgive ? { thenForgive } : {}) });
      return cleared;
    };
    if ("token" in keys) {
      local(keys.token, { kind: correct ? "clear" : "fail" });
      return;
    }
    if (!correct) {
      for (const key of keyList(keys)) local(key, { kind: "fail" });
      return;
    }
    const others = [keys.source, keys.account];
    const cleared = local(keys.pair, { kind: "clear" }, others);
    // Here at once by what this node knows; on the bus by what the pair holds there when it is written.
    for (const key of others) {
      const { record } = this.#changed(this.#cells.known(key)?.record ?? {}, {
        kind: "forgive",
        failures: cleared,
      }, now);
      this.#cells.setLocal(key, record);
    }
  }

  // --- budgets --------------------------------------------------------------------------------------

  async takeRegistration(address: string, now: number): Promise<number> {
    this.#tick(now);
    await this.#catchUp();
    const key = `s.${busToken(sourceKey(address))}`;
    const release = await this.#locks.acquire([key]);
    try {
      return await this.#answer(
        () =>
          this.#modify(key, now, (record) => {
            const { waitMs, state } = bucketTake(record.registrations, now, this.#registrations);
            return waitMs > 0
              ? { result: waitMs }
              : { record: { ...record, registrations: state }, result: 0 };
          }),
        () => {
          throw unavailable();
        },
      );
    } finally {
      release();
    }
  }

  /** The keys of a login's budgets: its source's (unless a device token spares it), account's and pair's. */
  #loginKeys(address: string, account: string, options: LoginOptions) {
    const source = busToken(sourceKey(address));
    const name = busToken(account);
    return {
      source: options.deviceToken ? undefined : `s.${source}`,
      account: `a.${name}`,
      pair: `p.${source}.${name}`,
    };
  }

  #loginWaits(
    keys: { source: string | undefined; account: string },
    records: Map<string, LimitRecord>,
    now: number,
  ): { source: number; account: number } {
    const wait = (key: string | undefined, rate: BucketRate) =>
      key === undefined ? 0 : bucketWait(bucketTokens(records.get(key)?.logins, now, rate), rate);
    return {
      source: wait(keys.source, this.#sourceLogins),
      account: wait(keys.account, this.#accountLogins),
    };
  }

  #known(record: LimitRecord | undefined, now: number): boolean {
    return record?.knownAt !== undefined && now - record.knownAt <= this.#knownForMs;
  }

  async checkLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    this.#tick(now);
    await this.#catchUp();
    const keys = this.#loginKeys(address, account, options);
    const names = [keys.pair, keys.account, ...(keys.source ? [keys.source] : [])];
    const answer = (records: Map<string, LimitRecord>) => {
      const waits = this.#loginWaits(keys, records, now);
      return loginVerdict(waits.source, this.#known(records.get(keys.pair), now) ? waits.account : 0);
    };
    return await this.#answer(
      async () => answer(await this.#readAll(names)),
      () => answer(this.#knownAll(names)),
    );
  }

  async spendLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    this.#tick(now);
    await this.#catchUp();
    const keys = this.#loginKeys(address, account, options);
    const budgets = [keys.account, ...(keys.source ? [keys.source] : [])];
    const release = await this.#locks.acquire([keys.pair, ...budgets]);
    try {
      return await this.#answer(() => this.#spendOnline(keys, budgets, now), () => {
        const records = this.#knownAll([keys.pair, ...budgets]);
        this.#cells.setLocal(keys.pair, { ...records.get(keys.pair), knownAt: now });
        const waits = this.#loginWaits(keys, records, now);
        const refusal = loginVerdict(waits.source, waits.account);
        if (refusal) return refusal;
        for (const key of budgets) this.#cells.setLocal(key, this.#spent(key, records.get(key)!, now));
        return null;
      });
    } finally {
      release();
    }
  }

  #loginRate(key: string): BucketRate {
    return key.startsWith("s.") ? this.#sourceLogins : this.#accountLogins;
  }

  #spent(key: string, record: LimitRecord, now: number): LimitRecord {
    return { ...record, logins: bucketTake(record.logins, now, this.#loginRate(key)).state };
  }

  async #spendOnline(
    keys: { source: string | undefined; account: string; pair: string },
    budgets: string[],
    now: number,
  ): Promise<LoginRefusal | null> {
    // The source knows the account from now on (refreshed when half its time has passed).
    const pairSeen = this.#cells.known(keys.pair, { fromBus: true })?.record;
    const known = pairSeen?.knownAt !== undefined && now - pairSeen.knownAt <= this.#knownForMs / 2;
    const marking = known
      ? Promise.resolve(null)
      : this.#modify(keys.pair, now, (record) => ({ record: { ...record, knownAt: now }, result: null }));
    try {
      return await this.#spendBudgets(keys, budgets, now);
    } finally {
      await marking;
    }
  }

  /** Take one login from each budget, or none when either is spent (same steps as a proof's gate). */
  async #spendBudgets(
    keys: { source: string | undefined; account: string },
    budgets: string[],
    now: number,
  ): Promise<LoginRefusal | null> {
    const cells = new Map<string, Cell<LimitRecord>>();
    const fresh = new Set<string>();
    const refresh = async (key: string) => {
      cells.set(key, await this.#cells.read(key));
      fresh.add(key);
    };
    await Promise.all(budgets.map((key) => {
      const known = this.#cells.known(key, { fromBus: true });
      if (known) cells.set(key, known);
      return known ? undefined : refresh(key);
    }));
    const verdict = () => {
      const waits = this.#loginWaits(keys, new Map([...cells].map(([key, cell]) => [key, cell.record])), now);
      return loginVerdict(waits.source, waits.account);
    };
    let refusal = verdict();
    if (refusal) {
      const stale = budgets.filter((key) => !fresh.has(key));
      if (stale.length === 0) return refusal;
      await Promise.all(stale.map(refresh));
      refusal = verdict();
      if (refusal) return refusal;
    }
    const written: string[] = [];
    const take = async (key: string) => {
      for (let round = 1;; round++) {
        if (round > MAX_ROUNDS) throw contended(key);
        const cell = cells.get(key)!;
        if (
          await this.#cells.write(key, this.#toWrite(key, this.#spent(key, cell.record, now), now), cell.rev)
        ) {
          written.push(key);
          return;
        }
        await refresh(key);
        if (refusal) return;
        refusal = verdict();
        if (refusal) return;
      }
    };
    const results = await Promise.allSettled(budgets.map(take));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed || refusal) {
      await Promise.allSettled(
        written.map((key) =>
          this.#modify(key, now, (record) => ({ record: this.#givenBack(key, record, now), result: 0 }))
        ),
      );
      if (failed) throw failed.reason;
    }
    return refusal;
  }

  /** A budget with the login just taken given back. */
  #givenBack(key: string, record: LimitRecord, now: number): LimitRecord {
    const rate = this.#loginRate(key);
    const state: BucketState = {
      tokens: Math.min(rate.burst, bucketTokens(record.logins, now, rate) + 1),
      at: now,
    };
    return { ...record, logins: state };
  }

  /**
   * Make or open the bucket now, so a node that cannot reach NATS at start can say so before it serves
   * (later, the limits decide alone instead).
   *
   * @throws {BusUnavailableError} When the bucket cannot be made or opened within the timeout.
   */
  async ready(): Promise<void> {
    await this.#cells.open();
  }

  /** Outcomes decided while NATS was unreachable and not yet written to it. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Stop listening to the bus, after writing what was decided alone if NATS answers (the bus stays open). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stopListening();
    await this.#catchUp();
    await this.#flushing;
  }
}
