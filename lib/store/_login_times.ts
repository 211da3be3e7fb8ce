/**
 * The write-behind buffer of login times both user stores keep: a login's time is recorded here and
 * written at most {@linkcode LOGIN_FLUSH_MS} later, many at once, by the store's own flush. Each time is kept
 * with the verifier it was recorded under, so it is only ever written onto that account (a row deleted
 * and its id reused meanwhile is left alone), and follows the account through a password change.
 *
 * @module
 */

/** Longest a recorded login time waits before it is written (a crash loses at most this much of them). */
export const LOGIN_FLUSH_MS = 1000;

/** One login time waiting to be written. */
export interface PendingLogin {
  /** When (ms since the epoch). */
  at: number;
  /** The account's verifier it was recorded under. */
  verifier: string;
}

/** Login times recorded and not yet written, and the timer of their next flush. */
export class LoginTimes {
  #logins = new Map<number, PendingLogin>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flush: () => void;

  /**
   * Prepare.
   *
   * @param flush The store's flush, called by the timer.
   */
  constructor(flush: () => void) {
    this.#flush = flush;
  }

  /** How many times are waiting. */
  get size(): number {
    return this.#logins.size;
  }

  /**
   * The time waiting for an account, when it was recorded under this verifier.
   *
   * @param id The account.
   * @param verifier Its verifier now.
   * @returns The time, or `undefined`.
   */
  pending(id: number, verifier: string): number | undefined {
    const pending = this.#logins.get(id);
    return pending?.verifier === verifier ? pending.at : undefined;
  }

  /**
   * Record a login and schedule the flush.
   *
   * @param id The account.
   * @param verifier Its verifier.
   * @param now When, ms since the epoch.
   * @param stored The time the database holds (`null`: none).
   * @returns The previous login's time: the one waiting, else the stored one.
   */
  record(id: number, verifier: string, now: number, stored: number | bigint | string | null): number | null {
    const pending = this.#logins.get(id);
    const previous = pending?.verifier === verifier ? pending.at : stored === null ? null : Number(stored);
    this.#logins.set(id, { at: now, verifier });
    this.schedule();
    return previous;
  }

  /**
   * The account's verifier changed: a time waiting under the old one follows it.
   *
   * @param id The account.
   * @param expected The old verifier.
   * @param verifier The new one.
   */
  moved(id: number, expected: string, verifier: string): void {
    const pending = this.#logins.get(id);
    if (pending?.verifier === expected) pending.verifier = verifier;
  }

  /**
   * The account is deleted: its time is not written.
   *
   * @param id The account.
   */
  deleted(id: number): void {
    this.#logins.delete(id);
  }

  /**
   * What a flush writes now.
   *
   * @returns The waiting times.
   */
  take(): [number, PendingLogin][] {
    return [...this.#logins];
  }

  /**
   * These were written: forget those not recorded again meanwhile.
   *
   * @param logins What {@linkcode LoginTimes.take} gave.
   */
  written(logins: [number, PendingLogin][]): void {
    for (const [id, entry] of logins) if (this.#logins.get(id) === entry) this.#logins.delete(id);
  }

  /** Flush within {@linkcode LOGIN_FLUSH_MS}, unless a flush is already scheduled. */
  schedule(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, LOGIN_FLUSH_MS);
  }

  /** Clear the scheduled flush. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
