/**
 * Locks by key within one process: whoever holds a key's lock is the only
 * one here reading and writing that key, so a node's own requests never race
 * each other (only other nodes' do, which compare-and-swap settles).
 *
 * @module
 */

/** Exclusive locks named by strings. */
export class KeyLocks {
  #tails = new Map<string, Promise<void>>();

  /**
   * Wait for the locks of several keys (taken in sorted order, so two callers cannot wait on each other).
   *
   * @param keys The keys (duplicates are taken once).
   * @returns Releases them all; call it exactly once.
   */
  async acquire(keys: readonly string[]): Promise<() => void> {
    const releases: (() => void)[] = [];
    for (const key of [...new Set(keys)].sort()) releases.push(await this.#one(key));
    return () => {
      for (const release of releases) release();
    };
  }

  async #one(key: string): Promise<() => void> {
    const before = this.#tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = before ? before.then(() => mine) : mine;
    this.#tails.set(key, tail);
    if (before) await before;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }

  /** Keys locked or waited for; for tests of the memory bound. */
  get size(): number {
    return this.#tails.size;
  }
}
