/**
 * Connections that may be shed, grouped by source address, to find the next one to go in O(1): the oldest
 * connection of the source that holds the most. Sans I/O.
 *
 * Why by source and not simply the oldest of all: an attacker who reconnects every connection it loses
 * keeps the server at its cap, and the oldest of all is soon a real client's, well before
 * its login is over (measured: 9 logins out of 10 failed under 400 reconnecting connections
 * from 20 addresses). The source that holds the most is the attacker's as long as it has fewer addresses
 * than the cap has connections, so a client alone on its address keeps its connection.
 *
 * @module
 */

/**
 * Entries keyed by an object, grouped by source, ordered by when they were added.
 *
 * @example
 * ```ts
 * import { ShedQueue } from "./_shed_queue.ts";
 * const queue = new ShedQueue<string>();
 * const [a, b, c] = [{}, {}, {}];
 * queue.add(a, "10.0.0.1", "lone client");
 * queue.add(b, "10.0.0.2", "attacker, first");
 * queue.add(c, "10.0.0.2", "attacker, second");
 * console.assert(queue.next()?.[1] === "attacker, first");
 * ```
 */
export class ShedQueue<T> {
  /** Each source's entries, oldest first. */
  #bySource = new Map<string, Map<object, T>>();
  #sourceOf = new Map<object, string>();
  /** Sources by how many entries they hold; within a count, in the order they reached it. */
  #byCount = new Map<number, Set<string>>();
  #most = 0;

  /** Number of entries. */
  get size(): number {
    return this.#sourceOf.size;
  }

  /**
   * Add an entry as the youngest of its source (a key already present is moved there).
   *
   * @param key Identifies the entry.
   * @param source Its source (an address, or the key it is counted under).
   * @param value What to hand back when it is picked.
   */
  add(key: object, source: string, value: T): void {
    this.delete(key);
    let entries = this.#bySource.get(source);
    if (!entries) this.#bySource.set(source, entries = new Map());
    entries.set(key, value);
    this.#sourceOf.set(key, source);
    this.#move(source, entries.size - 1, entries.size);
  }

  /**
   * Remove an entry, if present.
   *
   * @param key Identifies the entry.
   * @returns Whether it was there.
   */
  delete(key: object): boolean {
    const source = this.#sourceOf.get(key);
    if (source === undefined) return false;
    this.#sourceOf.delete(key);
    const entries = this.#bySource.get(source)!;
    entries.delete(key);
    if (entries.size === 0) this.#bySource.delete(source);
    this.#move(source, entries.size + 1, entries.size);
    return true;
  }

  /**
   * Number of entries of one source.
   *
   * @param source The source.
   * @returns The count.
   */
  sizeOf(source: string): number {
    return this.#bySource.get(source)?.size ?? 0;
  }

  /**
   * The entries of one source, oldest first (iterate a copy when deleting meanwhile).
   *
   * @param source The source.
   * @returns Their keys and values.
   */
  entriesOf(source: string): MapIterator<[object, T]> {
    return (this.#bySource.get(source) ?? new Map<object, T>()).entries();
  }

  /**
   * The entry to shed next: the oldest of the source holding the most (of those holding as many, the one
   * that got there first).
   *
   * @returns Its key, value and source, or `undefined` when empty.
   */
  next(): [object, T, string] | undefined {
    const source = this.#byCount.get(this.#most)?.values().next().value;
    if (source === undefined) return undefined;
    const [key, value] = this.#bySource.get(source)!.entries().next().value!;
    return [key, value, source];
  }

  #move(source: string, from: number, to: number): void {
    const old = this.#byCount.get(from);
    old?.delete(source);
    if (old?.size === 0) this.#byCount.delete(from);
    if (to > 0) {
      let set = this.#byCount.get(to);
      if (!set) this.#byCount.set(to, set = new Set());
      set.add(source);
    }
    if (to > this.#most) this.#most = to;
    while (this.#most > 0 && !this.#byCount.has(this.#most)) this.#most--;
  }
}
