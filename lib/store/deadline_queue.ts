/**
 * Deadlines of one length on one timer. Requests that each get the same time (a store's reads, a bus's
 * requests) end in the order they started, so one timer, armed for the oldest deadline still open, serves
 * them all: starting and ending a request costs no timer of its own. A runtime timer set and cleared costs
 * several microseconds, and a node makes several such requests per login.
 *
 * The timer is cleared whenever no deadline is open, so a queue with nothing under way holds no timer (a
 * process may end, a test's sanitizers find nothing pending).
 *
 * @module
 */

interface Entry {
  /** When it expires (`performance.now()`). */
  at: number;
  /** Neither expired nor ended. */
  open: boolean;
  /** Dropped once it is ended or called: what it holds need not wait for the entry to leave the list. */
  expire: () => void;
}

const NOTHING = (): void => {};

/**
 * Deadlines that each expire `ms` after they start, unless ended first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DeadlineQueue } from "./deadline_queue.ts";
 * const deadlines = new DeadlineQueue(10);
 * const expired: string[] = [];
 * const end = deadlines.start(() => expired.push("answered in time"));
 * deadlines.start(() => expired.push("never answered"));
 * end();
 * await new Promise((resolve) => setTimeout(resolve, 30));
 * assert.deepEqual(expired, ["never answered"]);
 * assert.equal(deadlines.open, 0);
 * ```
 */
export class DeadlineQueue {
  #ms: number;
  /**
   * Entries in the order started (so in the order they expire); those before `#head` are done with, and
   * `#head` is the oldest open one's (so the list spans the open deadlines, with the ended among them).
   */
  #entries: Entry[] = [];
  #head = 0;
  #open = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Expiring entries now: the timer is armed again once they are done, not by each start meanwhile. */
  #expiring = false;

  /**
   * Make an empty queue.
   *
   * @param ms How long after its start each deadline expires (at least 1).
   */
  constructor(ms: number) {
    this.#ms = Math.max(1, ms);
  }

  /** Deadlines neither expired nor ended. */
  get open(): number {
    return this.#open;
  }

  /**
   * Start a deadline.
   *
   * @param expire Called once when it expires (not if ended first). It may start and end deadlines, and must
   *   not throw (it runs in the timer's callback).
   * @returns Ends it: `expire` is not called after that. Calling it again, or after it expired, does nothing.
   */
  start(expire: () => void): () => void {
    const entry: Entry = { at: performance.now() + this.#ms, open: true, expire };
    this.#entries.push(entry);
    this.#open++;
    if (this.#timer === undefined && !this.#expiring) this.#arm(this.#ms);
    return () => {
      if (!entry.open) return;
      entry.open = false;
      entry.expire = NOTHING;
      if (--this.#open === 0) this.#idle();
      else this.#compact();
    };
  }

  /** Nothing is open: no timer, no entries kept. */
  #idle(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#entries = [];
    this.#head = 0;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#fire(), ms);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#expiring = true;
    try {
      const now = performance.now();
      // Only the entries there when it fired: an entry's `expire` may start others (due later) and end any,
      // and a list emptied or compacted meanwhile is left for the timer armed below.
      const entries = this.#entries;
      const last = entries.length;
      while (this.#entries === entries && this.#head < last) {
        const entry = entries[this.#head]!;
        if (entry.open && entry.at > now) break;
        this.#head++;
        if (!entry.open) continue;
        const { expire } = entry;
        entry.open = false;
        entry.expire = NOTHING;
        this.#open--;
        expire();
      }
    } finally {
      this.#expiring = false;
      if (this.#open === 0) this.#idle();
      else {
        this.#compact();
        this.#arm(Math.max(0, this.#entries[this.#head]!.at - performance.now()));
      }
    }
  }

  /** Step past the entries done with (one is open), and drop them once they are most of the list. */
  #compact(): void {
    while (this.#head < this.#entries.length && !this.#entries[this.#head]!.open) this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
