/**
 * Reads gathered into one statement: while a statement is under way, the reads asked for meanwhile wait,
 * and the next statement carries all of them. An idle database is asked at once (within the same turn of
 * the event loop); a busy one gets fewer, larger statements, each a round trip the node and the database do
 * not make once per request. PostgreSQL's logins use it (lib/store/postgres_user_store.ts): the two reads of
 * every login, each once a statement and a wake-up of a backend, now go with those of the other logins
 * under way, both kinds in one statement.
 *
 * A read keeps its own deadline: it fails when its time is up, whether it is still waiting (then it is
 * never sent) or its statement is still running, and a statement is given the time its newest read has left
 * (the oldest's would fail a read asked a moment ago with the time of one that waited long). One read the
 * statement cannot take (a value the database refuses) does not fail the others: after a failure that is
 * not shared by all (see `ReadBatchOptions.shared`), each read of the batch still waiting for its answer is
 * tried alone, one after another.
 *
 * @module
 */

import { DeadlineQueue } from "./deadline_queue.ts";

/**
 * Runs one statement for a batch of queries.
 *
 * @param queries The queries, in the order asked.
 * @param since When the newest of them was asked (the statement's deadline runs from then).
 * @returns One answer per query, in the same order.
 */
export type ReadBatch<Q, A> = (queries: readonly Q[], since: number) => Promise<A[]>;

/** Options of {@linkcode ReadBatches}. */
export interface ReadBatchOptions {
  /** How long a read may wait and run, ms from when it was asked (timed by the runtime's timers, one for all). */
  timeoutMs: number;
  /** What a read whose time ran out before it was answered fails with. */
  expired: () => unknown;
  /** Whether a statement's failure is every read's (the database is unreachable), not one value's. */
  shared: (err: unknown) => boolean;
  /** Most reads in one statement (default {@linkcode MAX_READ_BATCH}). */
  maxBatch?: number;
  /** The clock the reads are stamped with, ms (default `performance.now`). */
  now?: () => number;
}

/** Most reads one statement carries by default: bounds the statement's text and the answer's size. */
export const MAX_READ_BATCH = 128;

interface Waiting<Q, A> {
  query: Q;
  since: number;
  /** Answered, failed, or out of time: settling it again does nothing. */
  done: boolean;
  resolve: (answer: A) => void;
  reject: (err: unknown) => void;
}

/**
 * Reads sent one statement at a time, each statement carrying every read that waited for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadBatches } from "./_read_batches.ts";
 * const statements: number[][] = [];
 * const squares = new ReadBatches<number, number>(async (queries) => {
 *   statements.push([...queries]);
 *   return queries.map((n) => n * n);
 * }, { timeoutMs: 1000, expired: () => new Error("Too late"), shared: () => true });
 * assert.deepEqual(await Promise.all([2, 3, 4].map((n) => squares.read(n))), [4, 9, 16]);
 * assert.deepEqual(statements, [[2, 3, 4]]);
 * ```
 */
export class ReadBatches<Q, A> {
  #statement: ReadBatch<Q, A>;
  #options: Required<ReadBatchOptions>;
  #deadlines: DeadlineQueue;
  #waiting: Waiting<Q, A>[] = [];
  /** Every read not yet settled (waiting, or in a statement under way). */
  #unsettled = new Set<Promise<unknown>>();
  /** A statement is under way, or about to be sent. */
  #busy = false;

  /**
   * Gather reads.
   *
   * @param statement Runs one statement for a batch of queries.
   * @param options Deadlines and failures.
   */
  constructor(statement: ReadBatch<Q, A>, options: ReadBatchOptions) {
    this.#statement = statement;
    this.#options = { maxBatch: MAX_READ_BATCH, now: () => performance.now(), ...options };
    this.#deadlines = new DeadlineQueue(this.#options.timeoutMs);
  }

  /** Reads waiting for the next statement. */
  get waiting(): number {
    return this.#waiting.filter((read) => !read.done).length;
  }

  /**
   * Read, together with the reads asked for in the same turn and while an earlier statement runs.
   *
   * @param query The query.
   * @returns Its answer.
   * @throws What its statement failed with (tried alone when the failure may be another read's), or
   *   `options.expired()` when its time ran out before it was answered.
   */
  read(query: Q): Promise<A> {
    const answer = this.#read(query);
    this.#unsettled.add(answer);
    const settled = () => void this.#unsettled.delete(answer);
    answer.then(settled, settled);
    return answer;
  }

  /**
   * Wait for the reads asked so far, those still waiting for their statement too (each settles by its
   * deadline); reads asked later are not waited for.
   *
   * @returns When each has been answered or has failed.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#unsettled]);
  }

  #read(query: Q): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      let endDeadline = (): void => {};
      const finish = (): boolean => {
        if (read.done) return false;
        read.done = true;
        endDeadline();
        return true;
      };
      const read: Waiting<Q, A> = {
        query,
        since: this.#options.now(),
        done: false,
        resolve: (answer) => void (finish() && resolve(answer)),
        reject: (err) => void (finish() && reject(err)),
      };
      endDeadline = this.#deadlines.start(() => read.reject(this.#options.expired()));
      this.#waiting.push(read);
      if (this.#busy) return;
      this.#busy = true;
      // The reads of this turn go in the first statement too.
      queueMicrotask(() => void this.#drain());
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const now = this.#options.now();
        const live: Waiting<Q, A>[] = [];
        for (const read of this.#waiting.splice(0, this.#options.maxBatch)) {
          if (read.done) continue;
          if (now - read.since >= this.#options.timeoutMs) read.reject(this.#options.expired());
          else live.push(read);
        }
        if (live.length > 0) await this.#send(live);
      }
    } finally {
      this.#busy = false;
    }
  }

  /** One statement for the batch; never rejects (each read is settled instead). */
  async #send(batch: Waiting<Q, A>[]): Promise<void> {
    try {
      const newest = Math.max(...batch.map((read) => read.since));
      const answers = await this.#statement(batch.map((read) => read.query), newest);
      if (answers.length !== batch.length) {
        throw new RangeError(`Read batch answered ${answers.length} of ${batch.length} queries`);
      }
      batch.forEach((read, i) => read.resolve(answers[i]!));
    } catch (err) {
      if (batch.length === 1 || this.#options.shared(err)) {
        for (const read of batch) read.reject(err);
        return;
      }
      // One at a time, in the order asked: one statement at once, and the answers come in the
      // order sequential reads would have them (a login's time is recorded as its read is answered).
      for (const read of batch) if (!read.done) await this.#send([read]);
    }
  }
}
