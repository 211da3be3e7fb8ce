/**
 * Connections that may be shed, grouped by source address, to find the next one to go in O(1): the oldest
 * connection of the source (or group of sources: an IPv6 /48, see `shedGroup`) that holds the most. Sans I/O.
 *
 * Why by source and not simply the oldest of all: an attacker who reconnects every connection it loses
 * keeps the server at its cap, and the oldest of all is soon a real client's, well before
 * its login is over (measured: 9 logins out of 10 failed under 400 reconnecting connections
 * from 20 addresses). The source that holds the most is the attacker's as long as it has fewer addresses
 * than the cap has connections, so a client alone on its address keeps its connection. Sources can be
 * grouped for this choice: IPv6 addresses are cheap (one customer often has a /48, 65,536 /64s), and an
 * attacker that holds one connection in each of many /64s would otherwise hold as few per source as the
 * real client.
 *
 * @module
 */

/**
 * The group a source is counted in when the shedder picks the source that holds the most: an IPv6 /64
 * (as `sourceKey` gives it) in its /48, anything else alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shedGroup } from "./_shed_queue.ts";
 * assert(shedGroup("2001:db8:1:2::/64") === "2001:db8:1::/48");
 * assert(shedGroup("192.0.2.1") === "192.0.2.1");
 * ```
 *
 * @param source A source key.
 * @returns Its group.
 */
export function shedGroup(source: string): string {
  if (!source.endsWith("::/64")) return source;
  return `${source.split(":").slice(0, 3).join(":")}::/48`;
}

/** Options of {@linkcode ShedQueue}. */
export interface ShedQueueOptions {
  /** The group a source is counted in when the next entry is picked (default: each source alone). */
  group?: (source: string) => string;
}

/**
 * Entries keyed by an object, grouped by source (and sources by group), ordered by when they were added.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ShedQueue } from "./_shed_queue.ts";
 * const queue = new ShedQueue<string>();
 * const [a, b, c] = [{}, {}, {}];
 * queue.add(a, "10.0.0.1", "lone client");
 * queue.add(b, "10.0.0.2", "attacker, first");
 * queue.add(c, "10.0.0.2", "attacker, second");
 * assert(queue.next()?.[1] === "attacker, first");
 * ```
 */
export class ShedQueue<T> {
  /** Each source's entries, oldest first. */
  #bySource = new Map<string, Map<object, T>>();
  /** Each group's entries, oldest first, with their source. */
  #byGroup = new Map<string, Map<object, [T, string]>>();
  #sourceOf = new Map<object, string>();
  /** Groups by how many entries they hold; within a count, in the order they reached it. */
  #byCount = new Map<number, Set<string>>();
  #most = 0;
  #group: (source: string) => string;

  /**
   * Make an empty queue.
   *
   * @param options How sources are grouped when the next entry is picked.
   */
  constructor(options: ShedQueueOptions = {}) {
    this.#group = options.group ?? ((source) => source);
  }

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
    const group = this.#group(source);
    let grouped = this.#byGroup.get(group);
    if (!grouped) this.#byGroup.set(group, grouped = new Map());
    grouped.set(key, [value, source]);
    this.#move(group, grouped.size - 1, grouped.size);
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
    const group = this.#group(source);
    const grouped = this.#byGroup.get(group)!;
    grouped.delete(key);
    if (grouped.size === 0) this.#byGroup.delete(group);
    this.#move(group, grouped.size + 1, grouped.size);
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
   * The entry to shed next: the oldest of the group holding the most (of those holding as many, the one
   * that got there first).
   *
   * @returns Its key, value and source, or `undefined` when empty.
   */
  next(): [object, T, string] | undefined {
    const group = this.#byCount.get(this.#most)?.values().next().value;
    if (group === undefined) return undefined;
    const [key, [value, source]] = this.#byGroup.get(group)!.entries().next().value!;
    return [key, value, source];
  }

  #move(group: string, from: number, to: number): void {
    const old = this.#byCount.get(from);
    old?.delete(group);
    if (old?.size === 0) this.#byCount.delete(from);
    if (to > 0) {
      let set = this.#byCount.get(to);
      if (!set) this.#byCount.set(to, set = new Set());
      set.add(group);
    }
    if (to > this.#most) this.#most = to;
    while (this.#most > 0 && !this.#byCount.has(this.#most)) this.#most--;
  }
}
