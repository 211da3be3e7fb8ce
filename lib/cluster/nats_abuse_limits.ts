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
 * failures and the budgets of the same key: a source's registrations and
 * logins, an account's logins, and whether a pair has logged in (and, kept
 * while their leases run, the counts of proofs under way that nodes of an
 * earlier version wrote). The bucket's entries expire the longest time any of
 * this matters after their last write (the counters' forget time, at least an
 * hour), which bounds what it keeps; the node's mirror of what it has seen
 * holds at most 100,000 keys, as many as the in-process counters.
 *
 * **A proof is counted as it ends, in one step with its gate.** `beginProof`
 * lets a proof be checked on what this node has seen of its keys and the proofs
 * it is checking itself (as one node does, the proofs under way counted as
 * failures); it asks NATS nothing unless that says wait, since a refusal is
 * given only on what the bucket holds. `endProof` then makes the count that
 * decides: the gate on what is counted (proofs under way count at their own
 * ends, not here), and every key it reads written by compare-and-swap from the
 * record the gate was computed on (the failure, or the success's clearing and
 * forgiving, and the login budgets), a key that changed meanwhile is read again
 * and the gate computed again, and a gate that now says wait takes back what
 * was written and counts nothing: the proof's outcome must then not be told
 * (`PROOF` gets `RATE_LIMITED`, the password right or wrong). So every outcome
 * told has been counted, on each key, after every outcome that key had already
 * let be told: proofs raced on several nodes are told no more often than one
 * gate allows, and a node that dies mid-proof leaves nothing counted. The
 * difference from one node: where one node counts proofs under way everywhere,
 * here each node counts its own; so a proof begun past the free ones while
 * another of the same keys was being checked may be refused at its end when
 * that one's failure restarts the backoff (one node would have let it through).
 * And `loginGate` answers a `LOGIN` from the records this node has seen (a key
 * it has not seen read now; all of them read now to say wait): changes other
 * nodes made since are met at the proof's end.
 *
 * **Cost.** Every write goes through `LimitStore.combine`: this node's changes
 * of one key waiting at the same time are written together, so the logins of
 * one address do not take turns on its key. A login with a password makes
 * two writes, one round of parallel requests, when this node has seen its
 * keys, its pair clean and marked within half the mark's time
 * (tests/cluster/nats_abuse_limits_cost_test.ts counts them): its source's and
 * account's, which count the proof and spend the budgets. Its pair's write
 * would change nothing then, once its source is found clean: every writer puts
 * a failure on a source before its pair, and takes one off a source only after
 * clearing it off the pair, so a clean source has a clean pair. The pair is
 * written, in a second round, when the source has failures; in the first,
 * with the others, when its mark is old. The first time, a login writes all
 * three, and reads at `LOGIN` the keys this node has not seen. A key
 * another node wrote since costs a read and a write more. A wrong password
 * makes three writes, in two rounds: its pair's once its source's and
 * account's are written, so that a failure taken back was never on its pair
 * (where a success would clear it and forgive it once more). A login with a
 * device token reads its keys and writes 3 or 4.
 *
 * **When NATS cannot be reached** (no connection, or a request unanswered
 * within `timeoutMs`; then for `retryMs` the node does not ask again), the node
 * decides alone from what it knows: the records it last saw (its mirror), the
 * proofs it is checking itself, and the failures it counted since. It never
 * fails open:
 * - An attempt to prove a password goes ahead, and a proof is counted as it
 *   ends, only when it is one of the free ones by that knowledge (no counter it
 *   meets is past `failures_before_backoff`, counting proofs under way; a source
 *   without failures under its parallel bound). One that must wait by that
 *   knowledge gets `RATE_LIMITED`; any other (past the free ones, its backoff
 *   over) gets `UNAVAILABLE`, since only the shared counters can say how far
 *   past it is.
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
import type { FailureCounter, GateCounter, GateVerdict } from "../auth/failure_gate.ts";
import type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import { sourceKey } from "../auth/rate_limiter.ts";
import type { AttemptOptions, RateLimiterOptions } from "../auth/rate_limiter.ts";
import { bucketRate } from "../auth/token_bucket.ts";
import type { BucketRate } from "../auth/token_bucket.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { limitOptions } from "../server/local_parts.ts";
import type { LimitSettings } from "../server/local_parts.ts";
import type { Logger } from "../server/logger.ts";
import type { AbuseLimits, LoginGate, ProofRefusal } from "../server/shared_parts.ts";
import { othersChecking } from "./_limit_record.ts";
import type { LimitRecord } from "./_limit_record.ts";
import { FailureUndo, restored, unmarked } from "./_failure_undo.ts";
import { LimitStore } from "./_limit_store.ts";
import type { Change } from "./_limit_record.ts";
import { SharedBudgets } from "./_shared_budgets.ts";
import { busToken } from "./nats_bus.ts";
import type { NatsBus } from "./nats_bus.ts";

/** Options of {@linkcode NatsAbuseLimits} beyond the configuration's settings. */
export interface NatsAbuseLimitsOptions {
  /** Longest wait for one request to NATS, in ms (default 1000). */
  timeoutMs?: number;
  /** After a request failed, how long the node decides alone before asking NATS again, in ms (default 1000). */
  retryMs?: number;
  /**
   * How long the count of proofs under way a node of an earlier version wrote holds without another write
   * from it, in ms (default 30,000): such counts are kept in the records as long, and met by the gate.
   */
  proofLeaseMs?: number;
  /** Outcomes decided while NATS was unreachable, kept for it (default 10,000). */
  maxPending?: number;
  /** Bucket name under the bus prefix (default `limits`). */
  bucket?: string;
  /** Where the loss and the return of NATS are told. */
  log?: Logger;
}

/** A proof's end as `endProof` counts it: its keys, who, when, its outcome, and whether it spends a login. */
interface ProofEnd {
  keys: AttemptKeys;
  address: string;
  account: string;
  now: number;
  correct: boolean;
  /** A correct password login: its budgets are spent in the same writes. */
  together: boolean;
}

/** The keys a password attempt is counted under. */
type PasswordKeys = { pair: string; source: string; account: string };

/** The keys an attempt is counted under: a device token's, or its pair's, source's and account's. */
type AttemptKeys = { token: string } | PasswordKeys;

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

  /**
   * The gate on records. `underWay`: count this node's proofs under way (to let one begin, as one node
   * does); at a proof's end they are not, since each is counted, and checked, at its own end.
   */
  #verdict(
    keys: AttemptKeys,
    records: Map<string, LimitRecord>,
    now: number,
    underWay = true,
  ): GateVerdict {
    const gate = (key: string): GateCounter => {
      const record = records.get(key) ?? {};
      return {
        counter: liveCounter(record.failures, now, this.#limiter.forgetAfterMs),
        checking: underWay
          ? this.#store.checking(key, record, now)
          : othersChecking(record, this.#store.node, now),
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
        async () => {
          // From the records last seen here and this node's own proofs under way: nothing is asked of NATS
          // unless they say wait (a refusal is given only on what the bucket holds). The count that decides
          // is made when the proof ends.
          let wait = this.#verdict(keys, this.#store.knownAll(names), now).waitMs;
          if (wait > 0) wait = this.#verdict(keys, await this.#store.readAll(names), now).waitMs;
          if (wait === 0) { for (const key of names) this.#store.adjust(key, 1); }
          return wait;
        },
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
    spend?: LoginOptions,
  ): Promise<ProofRefusal | null> {
    this.#enter(now);
    const keys = attemptKeys(address, account, options);
    // A correct password login spends the budgets of the same three keys it counts its proof on: one step.
    const together = correct && spend !== undefined && !spend.deviceToken && !("token" in keys);
    // No lock held: this node's changes of one key are written together (`LimitStore.combine`), so the
    // logins of one address on a node do not take turns.
    for (const key of keyList(keys)) this.#store.adjust(key, -1);
    const refusal = await this.#store.answer(
      () => this.#commit({ keys, address, account, now, correct, together }),
      () => this.#commitAlone({ keys, address, account, now, correct, together }),
    );
    if (refusal !== null || together || !correct || spend === undefined) return refusal;
    return await this.spendLogin(address, account, now, spend);
  }

  /** Run `fn` on an attempt's keys while holding this node's locks on them. */
  #locked<T>(keys: AttemptKeys, fn: (names: string[]) => Promise<T>): Promise<T> {
    const names = keyList(keys);
    return this.#store.locked(names, () => fn(names));
  }

  /**
   * Count a proof's outcome, in one step with the gate that lets it be told: every key the gate reads is
   * written by compare-and-swap from the records the decision was made on (see the module doc). A
   * correct one clears its pair and forgives the pair's failures on the source and the account, and,
   * `together`, spends the login budgets in the same writes; a spent budget leaves the login refused but
   * its proof counted (and its pair marked as knowing the account), as {@linkcode endProof} then
   * {@linkcode spendLogin} would.
   */
  async #commit(end: ProofEnd): Promise<ProofRefusal | null> {
    const { keys, address, account, now, correct, together } = end;
    const store = this.#store;
    const backoff = (records: Map<string, LimitRecord>): ProofRefusal | null => {
      const waitMs = this.#verdict(keys, records, now, false).waitMs;
      return waitMs > 0 ? { of: "backoff", waitMs } : null;
    };
    if ("token" in keys || !correct) {
      const change: Change = { kind: correct ? "clear" : "fail" };
      const taken = new FailureUndo();
      return await store.writeAll(keyList(keys), now, {
        refusal: backoff,
        // A failure's pair is written once its source and account are: a failure then taken back was never
        // on its pair, where a success on the pair meanwhile would clear it and forgive it on the source and
        // the account, which its taking back forgives as well.
        last: "token" in keys ? undefined : keys.pair,
        next: (key, record) => taken.note(key, record, store.changed(record, change, now).record),
        // Only a failure is ever taken back (refused on one of its three keys after another was written).
        undo: (key, record) =>
          taken.undo(key, record, (r) => store.changed(r, { kind: "forgive", failures: 1 }, now).record),
      });
    }
    const budgets = this.#budgets;
    const spend = (records: Map<string, LimitRecord>) =>
      together ? budgets.spendVerdict(address, account, now, {}, records) : null;
    const refusal = await this.#commitSuccess(keys, now, {
      refusal: (records) => backoff(records) ?? spend(records),
      spend: together,
      known: together,
    });
    if (refusal === null || refusal.of === "backoff") return refusal;
    // A spent budget: the proof is counted all the same, nothing spent.
    return await this.#commitSuccess(keys, now, { refusal: backoff, spend: false, known: true }) ?? refusal;
  }

  /**
   * Write a correct password proof's keys (see {@linkcode #commit}). The source's and account's
   * forgiveness follows what the pair's write cleared: a pair seen with failures (or not seen) is written
   * first, to know how many; one seen clean is written with the others, and should it turn out to have
   * failures by then (another node's), they are forgiven once the step is written.
   */
  async #commitSuccess(
    keys: PasswordKeys,
    now: number,
    step: {
      refusal: (records: Map<string, LimitRecord>) => ProofRefusal | null;
      spend: boolean;
      known: boolean;
    },
  ): Promise<ProofRefusal | null> {
    const store = this.#store;
    const budgets = this.#budgets;
    const seen = store.seen(keys.pair);
    const first = seen === undefined || (seen.failures?.failures ?? 0) > 0;
    // A pair seen clean, with no proofs of other nodes on it and its mark recent, is left unwritten when its
    // source turns out clean as written: every writer puts a failure on a source before its pair, and takes
    // one off a source only after clearing it off the pair, so a clean source has a clean pair, and the
    // pair's write would change nothing.
    const quiet = !first && othersChecking(seen, store.node, now) === 0 &&
      (!step.known || budgets.markFresh(seen, now));
    // The pair's failures its write clears, and how many the source's and account's writes forgave.
    let cleared: FailureCounter | undefined;
    let forgiven = 0;
    // The pair's mark before this step's: a step taken back leaves the pair as unknown as it was, or the
    // account's budget told at the next LOGIN would show that a refused proof was right.
    let knownBefore: number | undefined;
    const taken = new FailureUndo();
    const refusal = await store.writeAll(keyList(keys), now, {
      refusal: step.refusal,
      first: first ? keys.pair : undefined,
      last: quiet ? keys.pair : undefined,
      skipLast: (records) =>
        liveCounter(records.get(keys.source)?.failures, now, this.#limiter.forgetAfterMs) === undefined,
      next: (key, record) => {
        if (key === keys.pair) {
          cleared = liveCounter(record.failures, now, this.#limiter.forgetAfterMs);
          knownBefore = record.knownAt;
          const out = taken.note(key, record, store.changed(record, { kind: "clear" }, now).record);
          return step.known ? { ...out, knownAt: now } : out;
        }
        forgiven = first ? cleared?.failures ?? 0 : 0;
        const out = forgiven > 0
          ? taken.note(
            key,
            record,
            store.changed(record, { kind: "forgive", failures: forgiven }, now).record,
          )
          : record;
        return step.spend ? budgets.spent(key, out, now) : out;
      },
      undo: (key, record) => {
        const gone = key === keys.pair ? cleared : cleared && { ...cleared, failures: forgiven };
        const back = taken.undo(key, record, (r) => restored(r, gone));
        if (key === keys.pair) return step.known ? unmarked(back, now, knownBefore) : back;
        return step.spend ? budgets.givenBack(key, back, now) : back;
      },
    });
    const more = (cleared?.failures ?? 0) - forgiven;
    if (refusal === null && more > 0) {
      await Promise.all(
        [keys.source, keys.account].map((key) =>
          store.writeChange(key, { kind: "forgive", failures: more }, now)
        ),
      );
    }
    return refusal;
  }

  /**
   * {@linkcode #commit} when NATS cannot be reached: the gate by what this node knows (a proof past the
   * free ones by that knowledge: `UNAVAILABLE`), the outcome kept for the bucket.
   */
  #commitAlone(end: ProofEnd): ProofRefusal | null {
    const { keys, address, account, now, correct, together } = end;
    if (this.#store.full) throw unavailable();
    const waitMs = this.#aloneVerdict(keys, now);
    if (waitMs > 0) return { of: "backoff", waitMs };
    this.#endAlone(keys, now, correct);
    return together ? this.#budgets.spendAlone(address, account, now, {}) : null;
  }

  #endAlone(keys: AttemptKeys, now: number, correct: boolean): void {
    const store = this.#store;
    if ("token" in keys) {
      store.changeAlone(keys.token, { kind: correct ? "clear" : "fail" }, now);
      return;
    }
    if (!correct) {
      // Written in this order when NATS is back: a failure is on its source and account before its pair, as
      // online (a success that finds its source clean leaves its pair unwritten: see #commitSuccess).
      for (const key of [keys.source, keys.account, keys.pair]) store.changeAlone(key, { kind: "fail" }, now);
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
    const decide = (records: Map<string, LimitRecord>): LoginGate => {
      const refusal = budgets.checkFrom(address, account, now, {}, records);
      return { refusal, waitMs: refusal ? 0 : this.#verdict(keys, records, now).waitMs };
    };
    return await this.#store.answer(
      async () => {
        // From the records last seen here, a key not seen here read now; all read now only to say wait.
        // (Should another node have changed one since, the proof's end decides.)
        const records = this.#store.knownAll(names);
        const unseen = names.filter((key) => this.#store.seen(key) === undefined);
        if (unseen.length > 0) {
          for (const [key, record] of await this.#store.readAll(unseen)) records.set(key, record);
        }
        const known = decide(records);
        if (known.refusal === null && known.waitMs === 0) return known;
        return decide(await this.#store.readAll(names));
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
