/**
 * The pause of an accept loop after a failed accept, sans I/O. Out of descriptors (EMFILE, ENFILE) the
 * kernel keeps the connection queued and the next accept fails at once again: retried without a pause,
 * the loop spins on one core and logs a line per failure. The pause doubles from
 * {@linkcode ACCEPT_BACKOFF_FIRST_MS} up to {@linkcode ACCEPT_BACKOFF_MAX_MS}, and a successful accept
 * resets it.
 *
 * @module
 */

/** First pause after a failed accept, ms. */
export const ACCEPT_BACKOFF_FIRST_MS = 5;

/** Longest pause, ms. */
export const ACCEPT_BACKOFF_MAX_MS = 1000;

/**
 * The pause after each failed accept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AcceptBackoff } from "./_accept_backoff.ts";
 * const backoff = new AcceptBackoff();
 * assert(backoff.failed() === 5 && backoff.failed() === 10);
 * backoff.succeeded();
 * assert(backoff.failed() === 5);
 * ```
 */
export class AcceptBackoff {
  #pauseMs = 0;

  /**
   * An accept failed.
   *
   * @returns How long to wait before the next accept, ms.
   */
  failed(): number {
    this.#pauseMs = this.#pauseMs === 0
      ? ACCEPT_BACKOFF_FIRST_MS
      : Math.min(ACCEPT_BACKOFF_MAX_MS, this.#pauseMs * 2);
    return this.#pauseMs;
  }

  /** An accept succeeded: the next failure starts from the first pause again. */
  succeeded(): void {
    this.#pauseMs = 0;
  }
}
