/**
 * Writes to a key-value bucket where only the latest value of each key matters: a key written again
 * before its write is made is written once, with the newest value; one write per key is under way at a
 * time (so an older value never lands after a newer one), at most `maxInFlight` in all. A failed write is
 * kept for {@linkcode LatestWrites.retryFailed}, not tried again at once: the bus may be out of reach
 * for a while.
 *
 * @module
 */

import type { KV } from "./nats_bus.ts";

/** What is written to: a bucket's `put` and `delete`. */
export type WriteTarget = Pick<KV, "put" | "delete">;

/** Latest-value writes to a bucket. */
export class LatestWrites {
  #kv: WriteTarget;
  #maxInFlight: number;
  /** Each key's value as it should be (`null`: deleted), until a delete of it is made. */
  #desired = new Map<string, Uint8Array | null>();
  #dirty = new Set<string>();
  #writing = new Set<string>();
  #failed = new Set<string>();
  #settled: PromiseWithResolvers<void> | null = null;
  #failures = 0;

  /**
   * Make the writer.
   *
   * @param kv The bucket.
   * @param options Most writes under way at once.
   */
  constructor(kv: WriteTarget, options: { maxInFlight: number }) {
    this.#kv = kv;
    this.#maxInFlight = options.maxInFlight;
  }

  /** Whether every write asked for has been made or has failed. */
  get settled(): boolean {
    return this.#dirty.size === 0 && this.#writing.size === 0;
  }

  /** Writes that failed so far. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Set a key.
   *
   * @param key The key.
   * @param value Its value, or `null` to delete it.
   */
  set(key: string, value: Uint8Array | null): void {
    this.#desired.set(key, value);
    this.#dirty.add(key);
    this.#flush();
  }

  /** Delete every key that has a value. */
  deleteAll(): void {
    for (const [key, value] of this.#desired) if (value) this.set(key, null);
  }

  /** Write every key that has a value again (the bucket lets entries expire that are not rewritten). */
  rewriteAll(): void {
    for (const [key, value] of this.#desired) if (value) this.#dirty.add(key);
    this.#flush();
  }

  /** Try the failed writes again. */
  retryFailed(): void {
    for (const key of this.#failed) this.#dirty.add(key);
    this.#failed.clear();
    this.#flush();
  }

  /**
   * Wait until {@linkcode LatestWrites.settled}, at most `graceMs`.
   *
   * @param graceMs Longest wait.
   */
  async whenSettled(graceMs: number): Promise<void> {
    if (this.settled) return;
    this.#settled ??= Promise.withResolvers<void>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#settled.promise, new Promise((r) => timer = setTimeout(r, graceMs))]);
    clearTimeout(timer);
  }

  #flush(): void {
    for (const key of this.#dirty) {
      if (this.#writing.size >= this.#maxInFlight) return;
      if (this.#writing.has(key)) continue;
      this.#dirty.delete(key);
      this.#write(key);
    }
    if (this.settled) {
      this.#settled?.resolve();
      this.#settled = null;
    }
  }

  #write(key: string): void {
    const value = this.#desired.get(key) ?? null;
    this.#writing.add(key);
    const done = value ? this.#kv.put(key, value).then(() => {}) : this.#kv.delete(key);
    done.then(
      () => {
        if (this.#desired.get(key) === null && !this.#dirty.has(key)) this.#desired.delete(key);
      },
      () => {
        this.#failures++;
        this.#failed.add(key);
      },
    ).finally(() => {
      this.#writing.delete(key);
      this.#flush();
    });
  }
}
