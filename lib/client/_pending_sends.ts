/**
 * The sends of a {@linkcode ChatNode} waiting for their acknowledgement: one promise each, resolved by the
 * peer's acknowledgement, or failed by its timeout, by its link being given up, or by the node closing. Per
 * link it keeps how many wait and since when nothing moved, which tells the node when to ask the server
 * where the peer is now.
 *
 * @module
 */

/** What is kept per link. */
export interface SendLink {
  /** Sends waiting for their acknowledgement. */
  pending: number;
  /** When the oldest of them was queued or the last acknowledgement came. */
  progressAt: number;
}

interface Waiting<L> {
  resolve(): void;
  reject(err: Error): void;
  deadline: number;
  onTimeout(): void;
  link: L;
}

/**
 * The waiting sends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PendingSends } from "./_pending_sends.ts";
 * const sends = new PendingSends<{ pending: number; progressAt: number }>();
 * const link = { pending: 0, progressAt: 0 };
 * const done = sends.wait(1, link, 1000, () => sends.failLink(link, () => "timed out"));
 * sends.acknowledged([1]);
 * await done;
 * assert(link.pending === 0);
 * ```
 */
export class PendingSends<L extends SendLink> {
  #sends = new Map<number, Waiting<L>>();
  /** Ids in the order they were sent: with one timeout for all, also the order of their deadlines. */
  #order: number[] = [];
  #head = 0;
  /** One timer, for the earliest deadline: a timer per message would cost more than the message. */
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wait for a message's acknowledgement.
   *
   * @param id The message id.
   * @param link Its link.
   * @param timeoutMs How long before `onTimeout` runs (it must fail the send, usually with its link); the
   *   same for every send, so deadlines come in the order of the sends.
   * @param onTimeout Called once the time is up, the send still waiting.
   * @returns Resolves on acknowledgement.
   */
  wait(id: number, link: L, timeoutMs: number, onTimeout: () => void): Promise<void> {
    // Deadlines on the steady clock: a jump of the wall clock must not expire every send at once.
    const now = performance.now();
    if (link.pending++ === 0) link.progressAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      this.#sends.set(id, { resolve, reject, deadline: now + timeoutMs, onTimeout, link });
      this.#order.push(id);
      if (this.#timer === undefined) this.#arm(now);
    });
  }

  /** Run the timeouts that are due, then wait for the next deadline. */
  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    while (this.#head < this.#order.length) {
      const w = this.#sends.get(this.#order[this.#head]!);
      if (w && w.deadline > now) break;
      this.#head++;
      w?.onTimeout();
    }
    this.#arm(now);
  }

  #arm(now: number): void {
    // Settled sends leave their ids behind: skip them, and drop the consumed part of the list now and then.
    while (this.#head < this.#order.length && !this.#sends.has(this.#order[this.#head]!)) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
    const first = this.#sends.get(this.#order[this.#head]!);
    if (!first) return;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, first.deadline - now));
  }

  /**
   * The peer acknowledged these messages.
   *
   * @param ids Message ids (unknown ones are ignored).
   */
  acknowledged(ids: Iterable<number>): void {
    for (const id of ids) {
      const w = this.#take(id);
      if (!w) continue;
      w.link.progressAt = Date.now();
      w.resolve();
    }
  }

  /**
   * Fail every send on a link.
   *
   * @param link The link given up.
   * @param why The error text of each send, by id.
   */
  failLink(link: L, why: (id: number) => string): void {
    for (const [id, w] of [...this.#sends]) {
      if (w.link !== link) continue;
      const text = why(id);
      this.#take(id);
      w.reject(new Error(text));
    }
  }

  /**
   * Fail every send.
   *
   * @param why The error text.
   */
  failAll(why: string): void {
    for (const [id, w] of [...this.#sends]) {
      this.#take(id);
      w.reject(new Error(why));
    }
  }

  #take(id: number): Waiting<L> | undefined {
    const w = this.#sends.get(id);
    if (!w) return undefined;
    this.#sends.delete(id);
    w.link.pending--;
    if (this.#sends.size === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#order = [];
      this.#head = 0;
    }
    return w;
  }
}
