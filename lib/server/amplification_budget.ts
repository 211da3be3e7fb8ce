/**
 * The anti-amplification bound of a UDP session after its address is validated and before its handshake
 * completes (docs/PROTOCOL.md §20.4): at most {@linkcode AMPLIFICATION_FACTOR} times the bytes received.
 *
 * @module
 */

/** Bytes a server may send per byte received from a validated source until the handshake completes. */
export const AMPLIFICATION_FACTOR = 3;

/**
 * Counts bytes in and out of one session until {@linkcode AmplificationBudget.complete}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AmplificationBudget } from "./amplification_budget.ts";
 * const budget = new AmplificationBudget();
 * budget.received(1200);
 * assert(budget.canSend(3600) && !budget.canSend(3601));
 * budget.sent(3000);
 * assert(!budget.canSend(601));
 * budget.complete();
 * assert(budget.canSend(1_000_000));
 * ```
 */
export class AmplificationBudget {
  #received = 0;
  #sent = 0;
  #complete = false;

  /** Whether the handshake completed (no bound any more). */
  get isComplete(): boolean {
    return this.#complete;
  }

  /** Bytes that may still be sent before the next datagram arrives (Infinity once complete). */
  get remaining(): number {
    return this.#complete ? Infinity : AMPLIFICATION_FACTOR * this.#received - this.#sent;
  }

  /**
   * Count a datagram received from the session's (validated) source.
   *
   * @param n Its size in bytes.
   * @throws {RangeError} When `n` is not a non-negative safe integer.
   */
  received(n: number): void {
    this.#received += checked(n);
  }

  /**
   * Whether a datagram of `n` bytes may be sent now.
   *
   * @param n Its size in bytes.
   * @returns True once complete, else whether it stays within 3× the bytes received.
   * @throws {RangeError} When `n` is not a non-negative safe integer.
   */
  canSend(n: number): boolean {
    return checked(n) <= this.remaining;
  }

  /**
   * Count a datagram sent. Callers ask {@linkcode AmplificationBudget.canSend} first.
   *
   * @param n Its size in bytes.
   * @throws {RangeError} When `n` is not a non-negative safe integer, or sending it broke the bound (a bug
   *   in the caller, which must not send it).
   */
  sent(n: number): void {
    if (!this.canSend(n)) {
      throw new RangeError(`Amplification bound exceeded: ${n} bytes with ${this.remaining} left`);
    }
    if (!this.#complete) this.#sent += n;
  }

  /** The handshake completed: the peer proved it holds the session's keys, and the bound no longer applies. */
  complete(): void {
    this.#complete = true;
  }
}

function checked(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Invalid byte count: ${n}`);
  return n;
}
