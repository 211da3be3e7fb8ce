/**
 * One node's changes of one key, written together: while a write of a key is under way, the changes asked
 * for meanwhile wait, and the next write carries all of them. So however many requests share a key (the
 * logins of one address), a node writes it once per round trip rather than once per request, and its own
 * writes of a key never race each other.
 *
 * @module
 */

/**
 * A change waiting to be written with the others of its key: given the record as the changes before it
 * left it, the record to write, or `null` to leave this change out.
 */
export interface BatchedChange<R> {
  /** When the change was asked for (a batch is written at its latest). */
  now: number;
  /** The change. */
  apply: (record: R) => R | null;
}

/**
 * Writes one batch of a key: the changes in order, and for each whether it was written.
 *
 * @throws When the write fails: every change of the batch fails with it.
 */
export type WriteBatch<R> = (key: string, changes: BatchedChange<R>[]) => Promise<boolean[]>;

interface Waiting<R> extends BatchedChange<R> {
  done: (written: boolean) => void;
  failed: (err: unknown) => void;
}

/** The changes waiting per key, and the writer loop of each key being written. */
export class KeyBatches<R> {
  #write: WriteBatch<R>;
  #keys = new Map<string, Waiting<R>[]>();

  /**
   * Batch writes.
   *
   * @param write Writes one batch of a key.
   */
  constructor(write: WriteBatch<R>) {
    this.#write = write;
  }

  /**
   * Write a change of a key together with every other change of it waiting on this node.
   *
   * @param key The key.
   * @param now Current time in ms.
   * @param apply The change (called again, with a newer record, when the write must be made again).
   * @returns Whether the change was written.
   * @throws What the batch's write threw.
   */
  combine(key: string, now: number, apply: (record: R) => R | null): Promise<boolean> {
    return new Promise<boolean>((done, failed) => {
      const waiting = this.#keys.get(key);
      if (waiting) {
        waiting.push({ now, apply, done, failed });
        return;
      }
      this.#keys.set(key, [{ now, apply, done, failed }]);
      void this.#writeAll(key);
    });
  }

  async #writeAll(key: string): Promise<void> {
    const waiting = this.#keys.get(key)!;
    try {
      while (waiting.length > 0) {
        const changes = waiting.splice(0);
        try {
          const written = await this.#write(key, changes);
          changes.forEach((change, i) => change.done(written[i]!));
        } catch (err) {
          for (const change of changes) change.failed(err);
        }
      }
    } finally {
      // Nothing can be added between the loop's last check and here: no await in between.
      this.#keys.delete(key);
    }
  }
}
