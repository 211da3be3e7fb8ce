/**
 * Records in one JetStream key-value bucket, read and written by
 * compare-and-swap on their revision, with a bounded mirror in this node's
 * memory of the latest each key was seen holding. The mirror is only a hint
 * while the bus answers (every write is checked against the revision it was
 * computed from), and what the node knows when the bus does not.
 *
 * Every request is bounded by a timeout. A write that finds another revision
 * than it expected is a conflict (`null`), not an error; anything else that
 * fails — no connection, a timeout, JetStream not answering — throws
 * {@linkcode BusUnavailableError}.
 *
 * @module
 */

import type { KV } from "@nats-io/kv";
import { BusUnavailableError } from "./nats_bus.ts";
import type { PendingWrite } from "./_kv_writes.ts";
import { DeadlineQueue } from "../store/deadline_queue.ts";

/** A record as last seen, with the revision a write must name to replace it (0: no value). */
export interface Cell<T> {
  /** The record. */
  record: T;
  /** Its revision in the bucket, 0 when the key holds nothing. */
  rev: number;
  /** Changed here while the bus was unreachable: not what the bucket holds at `rev`. */
  local?: true;
}

/** How records turn into values and back. */
export interface CellCodec<T> {
  /** Read a value (never throws: a value of the wrong form reads as an empty record). */
  decode(bytes: Uint8Array): T;
  /** The value of a record. */
  encode(record: T): Uint8Array;
  /** The empty record (what a key holding nothing reads as). */
  empty(): T;
}

/** Options of {@linkcode KvCells}. */
export interface KvCellsOptions<T> {
  /** The records' codec. */
  codec: CellCodec<T>;
  /** Longest wait for one request, in ms. */
  timeoutMs: number;
  /** Most keys mirrored; the least recently used go first. */
  maxEntries: number;
  /**
   * Writes a key by compare-and-swap, the bucket open (`NatsBus.writes`, lib/cluster/_kv_writes.ts): its
   * result is the new revision, or `null` when the key was not at `rev`.
   */
  put: (key: string, value: Uint8Array, rev: number) => PendingWrite;
}

/** Records of one bucket, with this node's mirror of them. */
export class KvCells<T> {
  #open: () => Promise<KV>;
  #options: KvCellsOptions<T>;
  #mirror = new Map<string, Cell<T>>();
  #deadlines: DeadlineQueue;

  /**
   * Wrap a bucket.
   *
   * @param open Opens the bucket (called again after a failure).
   * @param options Codec, timeout, mirror bound.
   */
  constructor(open: () => Promise<KV>, options: KvCellsOptions<T>) {
    this.#open = open;
    this.#options = options;
    this.#deadlines = new DeadlineQueue(options.timeoutMs);
  }

  async #request<R>(what: string, call: (kv: KV) => Promise<R>, done?: () => void): Promise<R> {
    let endDeadline = (): void => {};
    const timeout = new Promise<never>((_, reject) => {
      endDeadline = this.#deadlines.start(() =>
        reject(new BusUnavailableError(`NATS did not answer ${what} within ${this.#options.timeoutMs} ms`))
      );
    });
    const work = this.#open().then(call);
    // Whatever the request does after the timeout is of no interest.
    work.catch(() => {});
    try {
      return await Promise.race([work, timeout]);
    } catch (err) {
      if (err instanceof BusUnavailableError) throw err;
      throw new BusUnavailableError(`NATS failed ${what}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    } finally {
      endDeadline();
      done?.();
    }
  }

  /**
   * Open the bucket (made when missing).
   *
   * @throws {BusUnavailableError} When it cannot be opened within the timeout.
   */
  async open(): Promise<void> {
    await this.#request("opening the bucket", () => Promise.resolve());
  }

  #remember(key: string, cell: Cell<T>): void {
    this.#mirror.delete(key);
    this.#mirror.set(key, cell);
    while (this.#mirror.size > this.#options.maxEntries) {
      const oldest = this.#mirror.keys().next().value;
      if (oldest === undefined) break;
      this.#mirror.delete(oldest);
    }
  }

  /**
   * The record a key was last seen holding (read or written by this node, or changed here while the bus
   * was unreachable).
   *
   * @param key The key.
   * @param options `fromBus`: only a record the bucket held at its revision (a write may start from it).
   * @returns The cell, or `undefined` when this node has not seen the key (or has forgotten it).
   */
  known(key: string, options: { fromBus?: boolean } = {}): Cell<T> | undefined {
    const cell = this.#mirror.get(key);
    if (cell) this.#remember(key, cell);
    return cell?.local && options.fromBus ? undefined : cell;
  }

  /**
   * Read a key now.
   *
   * @param key The key.
   * @returns Its record and revision.
   * @throws {BusUnavailableError} When the bucket cannot be read.
   */
  async read(key: string): Promise<Cell<T>> {
    const entry = await this.#request(`a read of ${key}`, (kv) => kv.get(key));
    const cell: Cell<T> = entry && entry.operation === "PUT"
      ? { record: this.#options.codec.decode(entry.value), rev: entry.revision }
      : { record: this.#options.codec.empty(), rev: entry?.revision ?? 0 };
    // A read answered after a later write of this node does not take the mirror back (a key that holds
    // nothing any more, its value aged out, does).
    const seen = this.#mirror.get(key);
    if (!seen || seen.local || cell.rev === 0 || cell.rev >= seen.rev) this.#remember(key, cell);
    return cell;
  }

  /**
   * Write a key if it still holds the revision the record was computed from.
   *
   * @param key The key.
   * @param record The new record.
   * @param rev The revision it replaces (0: the key must hold nothing).
   * @returns The new cell, or `null` when the key holds another revision by now (nothing was written).
   * @throws {BusUnavailableError} When the bucket cannot be written (the write may or may not have been
   *   made).
   */
  async write(key: string, record: T, rev: number): Promise<Cell<T> | null> {
    const value = this.#options.codec.encode(record);
    let pending: PendingWrite | undefined;
    let over = false;
    const next = await this.#request(
      `a write of ${key}`,
      () => {
        // Given up on while the bucket was opening: sent now, it would land after the caller was told it
        // failed, and its reply be waited for with nothing left to cancel it.
        if (over) {
          return Promise.reject(
            new BusUnavailableError(`Gave up on a write of ${key} before the bucket opened`),
          );
        }
        return (pending = this.#options.put(key, value, rev)).result;
      },
      // Given up on (timed out) or answered: its reply is no longer waited for.
      () => {
        over = true;
        pending?.cancel();
      },
    );
    if (next === null) return null;
    const cell = { record, rev: next };
    this.#remember(key, cell);
    return cell;
  }

  /**
   * Change the mirrored record of a key here only (the bus is unreachable); its revision is kept, so the
   * next write to the bus is checked against what the bus held.
   *
   * @param key The key.
   * @param record The record as this node now knows it.
   */
  setLocal(key: string, record: T): void {
    this.#remember(key, { record, rev: this.#mirror.get(key)?.rev ?? 0, local: true });
  }

  /** Keys mirrored; for tests of the memory bound. */
  get size(): number {
    return this.#mirror.size;
  }
}
