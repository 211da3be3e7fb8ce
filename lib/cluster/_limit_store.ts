/**
 * The records of the shared abuse limits as one node holds them: the bucket
 * on NATS (read fresh, written by compare-and-swap, the changes of one key
 * waiting on this node written together), this node's own proofs
 * under way on each key, and what the node does when NATS cannot be reached —
 * it answers alone from its mirror, and keeps the failures and successes it
 * decides for the bucket, written in order once NATS answers again. What the
 * records mean is up to the callers (nats_abuse_limits.ts, _shared_budgets.ts).
 *
 * @module
 */

import type { Logger } from "../server/logger.ts";
import { KeyBatches } from "./_key_batches.ts";
import type { BatchedChange } from "./_key_batches.ts";
import { KeyLocks } from "./_key_locks.ts";
import { KvCells } from "./_kv_cells.ts";
import { changedRecord, decodeRecord, encodeRecord, othersChecking, withProofs } from "./_limit_record.ts";
import type { Change, LimitRecord } from "./_limit_record.ts";
import { BusUnavailableError } from "./nats_bus.ts";
import type { KV, NatsBus } from "./nats_bus.ts";

/** What {@linkcode LimitStore} needs. */
export interface LimitStoreOptions {
  /** Bucket name under the bus prefix. */
  bucket: string;
  /** How long the bucket keeps an entry after its last write, in ms. */
  ttlMs: number;
  /** Longest wait for one request, in ms. */
  timeoutMs: number;
  /** After a request failed, how long the node answers alone before asking NATS again, in ms. */
  retryMs: number;
  /** How long this node's count of proofs on a key holds without another write of it, in ms. */
  leaseMs: number;
  /** Outcomes decided alone kept for the bucket; past that, {@linkcode LimitStore.full}. */
  maxPending: number;
  /** Most keys mirrored. */
  maxEntries: number;
  /** How long failures are kept after the latest (they are forgotten then). */
  forgetAfterMs: number;
  /** A record as it is worth keeping at a time (what is forgotten or full left out). */
  tidy: (key: string, record: LimitRecord, now: number) => LimitRecord;
  /** Where the loss and return of NATS are told. */
  log?: Logger | undefined;
}

/** An outcome decided alone, for one key, to be written when NATS answers. */
interface PendingChange {
  key: string;
  change: Change;
  now: number;
  /** A cleared pair: forgive the failures it held on these keys (its source's and account's). */
  thenForgive?: string[];
}

/**
 * Most writes of one key one request tries before it gives up (as if NATS did not answer, so the node
 * answers alone): other nodes changed the key every time in between.
 */
const MAX_ROUNDS = 32;

function contended(key: string): BusUnavailableError {
  return new BusUnavailableError(`Too many nodes writing ${key} at once: gave up after ${MAX_ROUNDS} tries`);
}

function randomId(): string {
  return crypto.getRandomValues(new Uint8Array(6)).toHex();
}

/** One node's view of the shared limit records. */
export class LimitStore {
  /** This instance's id in the records (a restarted node is another one). */
  readonly node: string = randomId();
  #bus: NatsBus;
  #options: LimitStoreOptions;
  #cells: KvCells<LimitRecord>;
  #locks = new KeyLocks();
  #batches = new KeyBatches<LimitRecord>((key, changes) => this.#writeCombined(key, changes));
  /** Proofs this node is checking, per key. */
  #inflight = new Map<string, number>();
  #pending: PendingChange[] = [];
  #flushing: Promise<boolean> | null = null;
  /** Until when (performance.now()) the node answers alone after a failed request. */
  #downUntil = 0;
  #reported = false;
  /** The latest time an operation was given: the clock of writes the node makes on its own. */
  #clock = 0;
  #stopListening: () => void;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Hold the records of a bucket.
   *
   * @param bus This node's connection to NATS.
   * @param options Bucket, times, bounds, tidying, log.
   */
  constructor(bus: NatsBus, options: LimitStoreOptions) {
    this.#bus = bus;
    this.#options = options;
    let checked = false;
    const open = async () => {
      const kv = await bus.kv(options.bucket, { ttlMs: options.ttlMs, history: 1 });
      if (!checked) checked = await this.#keepLongEnough(kv);
      return kv;
    };
    this.#cells = new KvCells<LimitRecord>(open, {
      codec: { decode: decodeRecord, encode: encodeRecord, empty: () => ({}) },
      timeoutMs: options.timeoutMs,
      maxEntries: options.maxEntries,
      put: (key, value, rev) => bus.writes.put(bus.bucketName(options.bucket), key, value, rev),
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
  async #keepLongEnough(kv: KV): Promise<boolean> {
    const ttlMs = this.#options.ttlMs;
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
        { timeout: 5000 },
      );
      const answer = reply.json<{ error?: { description?: string } }>();
      if (answer.error) throw new Error(answer.error.description ?? "refused");
      this.#options.log?.info("limits_bucket_ttl_raised", { from_ms: status.ttl, to_ms: ttlMs });
    } catch (err) {
      this.#options.log?.warn("limits_bucket_ttl_short", { need_ms: ttlMs, error: (err as Error).message });
    }
    return true;
  }

  // --- answering from NATS, or alone ---------------------------------------------------------------

  /**
   * Note the time an operation was given (the clock of what the node writes on its own).
   *
   * @param now Current time in ms.
   */
  tick(now: number): void {
    if (now > this.#clock) this.#clock = now;
  }

  #usable(): boolean {
    return this.#bus.connected && performance.now() >= this.#downUntil;
  }

  /**
   * Start writing what was decided alone, when NATS answers again. Nothing waits for it: until the last
   * outcome is written, {@linkcode answer} goes on deciding alone (on records that count every outcome
   * not yet written), so no request is held for the whole backlog and none is decided on counters that
   * lack part of it.
   */
  catchUp(): void {
    if (this.#pending.length > 0 && this.#usable()) void this.#flush();
  }

  /**
   * Answer from NATS, or alone when it cannot be reached — also while outcomes decided alone are still
   * to be written, so nothing is decided on counters that lack them.
   *
   * @param online Asks NATS; its {@linkcode BusUnavailableError} (or any other failure, told as a fault)
   *   means NATS could not be reached.
   * @param alone Answers from what the node knows.
   * @returns The answer.
   */
  async answer<R>(online: () => Promise<R>, alone: () => R | Promise<R>): Promise<R> {
    if (this.#usable() && this.#pending.length === 0) {
      try {
        const result = await online();
        this.#up();
        return result;
      } catch (err) {
        // Anything else that failed on the way is a fault here, told as such; the node answers alone all
        // the same rather than fail the request (or lose an outcome).
        if (!(err instanceof BusUnavailableError)) {
          this.#options.log?.error("limits_fault", {
            node: this.node,
            error: (err as Error)?.message ?? String(err),
          });
        }
        this.#down(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return await alone();
  }

  #down(err: Error): void {
    this.#downUntil = performance.now() + this.#options.retryMs;
    if (this.#reported) return;
    this.#reported = true;
    this.#options.log?.warn("limits_bus_unavailable", { node: this.node, error: err.message });
  }

  #up(): void {
    if (!this.#reported) return;
    this.#reported = false;
    this.#options.log?.info("limits_bus_back", { node: this.node, pending: this.#pending.length });
  }

  /** Write what was decided alone, in order; `false` when NATS failed again (the rest is kept). */
  #flush(): Promise<boolean> {
    this.#flushing ??= (async () => {
      try {
        while (this.#pending.length > 0) {
          const next = this.#pending[0]!;
          const release = await this.#locks.acquire([next.key]);
          try {
            const cleared = await this.writeChange(next.key, next.change, next.now);
            this.#pending.shift();
            if (cleared > 0 && next.thenForgive) {
              const change: Change = { kind: "forgive", failures: cleared };
              this.#pending.unshift(...next.thenForgive.map((key) => ({ key, change, now: next.now })));
            }
            this.#keepUnwritten(next.key);
          } finally {
            release();
          }
        }
        return true;
      } catch (err) {
        // Kept for the next try, whatever failed: meanwhile the node answers alone (never fails open).
        this.#down(err instanceof Error ? err : new Error(String(err)));
        this.#retryLater();
        return false;
      } finally {
        this.#flushing = null;
      }
    })();
    return this.#flushing;
  }

  /**
   * The write of one outcome put what the bucket now holds in the mirror; the outcomes of the key still
   * to be written go back on top of it, since the node decides alone from the mirror until the backlog is
   * written (else it would count fewer failures than it has seen, and let through attempts it must not).
   * A forgiveness still to be computed from a pair's record is not in it yet: the mirror counts more
   * failures than the bucket will, never fewer.
   */
  #keepUnwritten(key: string): void {
    const rest = this.#pending.filter((p) => p.key === key);
    if (rest.length === 0) return;
    let record = this.#cells.known(key)?.record ?? {};
    for (const p of rest) record = this.changed(record, p.change, p.now).record;
    this.#cells.setLocal(key, record);
  }

  /** Try writing what was decided alone again in a while, should no request come to do it. */
  #retryLater(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#pending.length > 0 && this.#usable()) void this.#flush();
    }, this.#options.retryMs);
    Deno.unrefTimer(this.#retryTimer as unknown as number);
  }

  /** Whether as many outcomes decided alone wait as may (then no more attempts are let through alone). */
  get full(): boolean {
    return this.#pending.length >= this.#options.maxPending;
  }

  /** Outcomes decided alone and not yet written. */
  get pending(): number {
    return this.#pending.length;
  }

  // --- this node's proofs under way, and locks ----------------------------------------------------

  /**
   * Run `fn` holding the locks of keys: meanwhile no other holder of any of them runs (writes through
   * {@linkcode combine} take none: they never race one another anyway).
   *
   * @param keys The keys.
   * @param fn What to run.
   * @returns What `fn` returns, once the locks are released.
   */
  async locked<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const release = await this.#locks.acquire(keys);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * This node's proofs under way on a key.
   *
   * @param key The key.
   * @returns How many.
   */
  count(key: string): number {
    return this.#inflight.get(key) ?? 0;
  }

  /**
   * Change this node's count of proofs under way on a key (never below 0).
   *
   * @param key The key.
   * @param by The change.
   */
  adjust(key: string, by: number): void {
    const n = this.count(key) + by;
    if (n > 0) this.#inflight.set(key, n);
    else this.#inflight.delete(key);
  }

  /**
   * The proofs under way on a key by a record: the other nodes' (their leases running) and this node's.
   *
   * @param key The key.
   * @param record Its record.
   * @param now Current time in ms.
   * @returns How many.
   */
  checking(key: string, record: LimitRecord, now: number): number {
    return othersChecking(record, this.node, now) + this.count(key);
  }

  // --- records ------------------------------------------------------------------------------------

  /**
   * A record as written: tidied, other nodes' counts of proofs under way kept while their leases run (a
   * node of an earlier version writes them), none of this node's (each proof is counted when it ends).
   */
  #toWrite(key: string, record: LimitRecord, now: number): LimitRecord {
    return this.#options.tidy(key, withProofs(record, this.node, 0, now + this.#options.leaseMs, now), now);
  }

  /**
   * Read keys now, in parallel.
   *
   * @param keys The keys.
   * @returns Their records.
   * @throws {BusUnavailableError} When NATS does not answer.
   */
  async readAll(keys: readonly string[]): Promise<Map<string, LimitRecord>> {
    const cells = await Promise.all(keys.map((key) => this.#cells.read(key)));
    return new Map(keys.map((key, i) => [key, cells[i]!.record]));
  }

  /**
   * The records this node last saw, changes it made alone included (an empty record for a key it has
   * not seen).
   *
   * @param keys The keys.
   * @returns Their records.
   */
  knownAll(keys: readonly string[]): Map<string, LimitRecord> {
    return new Map(keys.map((key) => [key, this.#cells.known(key)?.record ?? {}]));
  }

  /**
   * The record a key held in the bucket when this node last saw it there.
   *
   * @param key The key.
   * @returns The record, or `undefined`.
   */
  seen(key: string): LimitRecord | undefined {
    return this.#cells.known(key, { fromBus: true })?.record;
  }

  /**
   * Change a record here only (NATS cannot be reached; for what is not written later).
   *
   * @param key The key.
   * @param record The record as this node now knows it.
   */
  setLocal(key: string, record: LimitRecord): void {
    this.#cells.setLocal(key, record);
  }

  /**
   * Change one key by compare-and-swap, from the revision last seen there (hold its lock). Every write
   * also carries this node's count of proofs on the key.
   *
   * @param key The key.
   * @param now Current time in ms.
   * @param change The new record, or none when nothing is to be written (its result is then trusted only
   *   from a fresh read).
   * @returns The change's result.
   * @throws {BusUnavailableError} When NATS does not answer, or other nodes keep changing the key.
   */
  async modify<R>(
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

  /**
   * Change a key by compare-and-swap with every other change of it waiting on this node (_key_batches.ts):
   * applied in turn, written at once from the revision last seen here (a key not seen: empty); on a
   * conflict, read again and every change applied again, so a change may turn out left out.
   *
   * @param key The key.
   * @param now Current time in ms.
   * @param apply Given the record, the record to write, or `null` to leave this change out; called again
   *   (with a newer record) after a conflict.
   * @returns Whether the change was written (with the last record `apply` was given).
   * @throws {BusUnavailableError} When NATS does not answer, or other nodes keep changing the key.
   */
  combine(key: string, now: number, apply: (record: LimitRecord) => LimitRecord | null): Promise<boolean> {
    return this.#batches.combine(key, now, apply);
  }

  async #writeCombined(key: string, changes: BatchedChange<LimitRecord>[]): Promise<boolean[]> {
    const now = Math.max(...changes.map((change) => change.now));
    let cell = this.#cells.known(key, { fromBus: true }) ?? { record: {}, rev: 0 };
    for (let round = 1;; round++) {
      if (round > MAX_ROUNDS) throw contended(key);
      let record = cell.record;
      const written = changes.map((change) => {
        const next = change.apply(record);
        if (next === null) return false;
        record = next;
        return true;
      });
      if (!written.includes(true)) return written;
      if (await this.#cells.write(key, this.#toWrite(key, record, now), cell.rev)) return written;
      cell = await this.#cells.read(key);
    }
  }

  /**
   * Change several keys as one step: decide from their records, and when the answer is to go ahead, write
   * each ({@linkcode combine}), each write conditional on the revision the decision read. The decision
   * starts from the records last seen here (a key not seen: empty, as if it held nothing), so when they
   * are current it costs one write per key and nothing else; a key that changed meanwhile is read again
   * and the decision made again, and one that now refuses takes back what was written. A refusal on the
   * first decision is given only on records read fresh.
   *
   * @param keys The keys.
   * @param now Current time in ms.
   * @param step `refusal` decides from the records (`null`: go ahead); `next` is the record to write
   *   (given the records as the decision last saw them, every key's); `undo` takes it back; `first`, a
   *   key written before the others are computed (whose `next` then read what it replaced); `last`, a key
   *   written only once the others are (so it is never written by a step that is then refused), and left
   *   unwritten when `skipLast`, given the records the others were written from, says so.
   * @returns `null` when every key was written, else the refusal (nothing is left written).
   * @throws {BusUnavailableError} When NATS does not answer (what was written is taken back if it can be, in
   *   the reverse order of its phases).
   */
  async writeAll<R>(
    keys: readonly string[],
    now: number,
    step: {
      refusal: (records: Map<string, LimitRecord>) => R | null;
      next: (key: string, record: LimitRecord, records: Map<string, LimitRecord>) => LimitRecord;
      undo?: (key: string, record: LimitRecord) => LimitRecord;
      first?: string | undefined;
      last?: string | undefined;
      skipLast?: ((records: Map<string, LimitRecord>) => boolean) | undefined;
    },
  ): Promise<R | null> {
    let records = new Map<string, LimitRecord>();
    for (const key of keys) records.set(key, this.#cells.known(key, { fromBus: true })?.record ?? {});
    let fresh = false;
    const alone = (key: string | undefined) => key !== undefined && keys.includes(key) ? [key] : [];
    const first = alone(step.first);
    const last = alone(step.last);
    const phases = [first, keys.filter((key) => !first.includes(key) && !last.includes(key)), last]
      .filter((phase) => phase.length > 0);
    for (let round = 1;; round++) {
      if (round > MAX_ROUNDS) throw contended(keys.join(", "));
      let refusal = step.refusal(records);
      if (refusal !== null && !fresh) {
        records = await this.readAll(keys);
        refusal = step.refusal(records);
      }
      if (refusal !== null) return refusal;
      const written: string[] = [];
      const write = async (key: string) => {
        const ok = await this.combine(key, now, (record) => {
          records.set(key, record);
          if (refusal !== null) return null;
          refusal = step.refusal(records);
          return refusal === null ? step.next(key, record, records) : null;
        });
        if (ok) written.push(key);
      };
      const results: PromiseSettledResult<void>[] = [];
      for (const phase of phases) {
        if (results.some((r) => r.status === "rejected") || refusal !== null) break;
        if (phase === last && step.skipLast?.(records)) break;
        results.push(...await Promise.allSettled(phase.map(write)));
      }
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (!failed && refusal === null) return null;
      const undo = step.undo ?? ((_: string, record: LimitRecord) => record);
      // Taken back phase by phase, the last written first, each once the later ones are: what a step put on
      // or took off its keys in order is given back in the reverse order (a success's pair, cleared first,
      // gets its failures back only once its source has them again: no pair holds a failure its source does
      // not). Should one fail (NATS lost), the earlier ones stay as written rather than break that order.
      for (const phase of phases.toReversed()) {
        const back = phase.filter((key) => written.includes(key));
        const undone = await Promise.allSettled(
          back.map((key) => this.combine(key, now, (record) => undo(key, record))),
        );
        if (undone.some((r) => r.status === "rejected")) break;
      }
      if (failed) throw failed.reason;
      // Refused on records of which some may have been older than others (each key is read as its write
      // finds it changed): decided again on all of them read now, and tried again should that go ahead.
      records = await this.readAll(keys);
      fresh = true;
    }
  }

  /**
   * {@linkcode changedRecord} with this store's forget time.
   *
   * @param record The record.
   * @param change The change.
   * @param now When it happened.
   * @returns The new record and what was cleared.
   */
  changed(record: LimitRecord, change: Change, now: number): { record: LimitRecord; cleared: number } {
    return changedRecord(record, change, now, this.#options.forgetAfterMs);
  }

  /**
   * Write a change of one key's failures (hold its lock).
   *
   * @param key The key.
   * @param change The change.
   * @param now When it happened.
   * @returns What a `clear` took away (the failures not forgotten as it is written).
   * @throws {BusUnavailableError} When NATS does not answer.
   */
  writeChange(key: string, change: Change, now: number): Promise<number> {
    const at = Math.max(now, this.#clock);
    return this.modify(key, at, (record) => {
      // A clear written late (from the backlog) counts what it takes away by the failures not forgotten
      // as it is written: those forgotten since are no longer on the source and the account either.
      const { record: next, cleared } = this.changed(record, change, change.kind === "clear" ? at : now);
      return { record: next, result: cleared };
    });
  }

  /**
   * Make a change of one key's failures here, alone, and keep it for the bucket.
   *
   * @param key The key.
   * @param change The change.
   * @param now When it happened.
   * @param thenForgive For a pair cleared: the keys to forgive what the bucket's pair held, when written.
   * @returns What a `clear` took away here.
   */
  changeAlone(key: string, change: Change, now: number, thenForgive?: string[]): number {
    const { record, cleared } = this.changed(this.#cells.known(key)?.record ?? {}, change, now);
    this.#cells.setLocal(key, record);
    this.#pending.push({ key, change, now, ...(thenForgive ? { thenForgive } : {}) });
    return cleared;
  }

  /**
   * Make or open the bucket now.
   *
   * @throws {BusUnavailableError} When it cannot be made or opened within the timeout.
   */
  async ready(): Promise<void> {
    await this.#cells.open();
  }

  /** Stop listening to the bus, after writing what was decided alone if NATS answers. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stopListening();
    this.catchUp();
    await this.#flushing;
  }
}
