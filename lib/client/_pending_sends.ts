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
  timer: ReturnType<typeof setTimeout>;
  link: L;
}

/**
 * The waiting sends.
 *
 * @example
 * ```ts
 * import { PendingSends } from "./_pending_sends.ts";
 * const sends = new PendingSends<{ pending: number; progressAt: number }>();
 * const link = { pending: 0, progressAt: 0 };
 * const done = sends.wait(1, link, 1000, () => sends.failLink(link, () => "timed out"));
 * sends.acknowledged([1]);
 * await done;
 * console.assert(link.pending === 0);
 * ```
 */
export class PendingSends<L extends SendLink> {
  #sends = new Map<number, Waiting<L>>();

  /**
   * Wait for a message's acknowledgement.
   *
   * @param id The message id.
   * @param link Its link.
   * @param timeoutMs How long before `onTimeout` runs (it must fail the send, usually with its link).
   * @param onTimeout Called once the time is up, the send still waiting.
   * @returns Resolves on acknowledgement.
   */
  wait(id: number, link: L, timeoutMs: number, onTimeout: () => void): Promise<void> {
    if (link.pending++ === 0) link.progressAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(onTimeout, timeoutMs);
      this.#sends.set(id, { resolve, reject, timer, link });
    });
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
    clearTimeout(w.timer);
    w.link.pending--;
    return w;
  }
}
