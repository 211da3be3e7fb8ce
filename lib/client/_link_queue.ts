/**
 * The work on one peer link, one job at a time: the link's methods await crypto between steps, so the
 * datagrams that arrive for it and the polls that send for it take turns. Anyone can send datagrams, so
 * how many may wait is bounded, with a small share for handshakes; and one poll waiting does for every
 * datagram that asked for one meanwhile.
 *
 * @module
 */

/** Datagrams that may wait for one link: past this a flood (forged or not) is dropped unread. */
const MAX_JOBS = 256;
/** Handshakes among them: anyone can send HS1s, so they get a small share of their own. */
const MAX_HANDSHAKE_JOBS = 16;

/**
 * A link's queue of work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LinkQueue } from "./_link_queue.ts";
 * const queue = new LinkQueue();
 * const seen: string[] = [];
 * queue.admit(false, async () => void seen.push("datagram"));
 * queue.pump(async () => void seen.push("poll"));
 * queue.pump(async () => void seen.push("second poll, merged"));
 * await queue.settled;
 * assert(seen.join() === "datagram,poll");
 * ```
 */
export class LinkQueue {
  #chain: Promise<void> = Promise.resolve();
  #jobs = 0;
  #handshakeJobs = 0;
  #pumpQueued = false;

  /** Settles once the work queued so far has run. */
  get settled(): Promise<void> {
    return this.#chain;
  }

  /** No datagram waits: the job running is the last of its burst. */
  get idle(): boolean {
    return this.#jobs === 0;
  }

  /**
   * Queue work (its failure is dropped: the link keeps going).
   *
   * @param work The job.
   */
  run(work: () => Promise<void>): void {
    this.#chain = this.#chain.then(work).catch(() => {});
  }

  /**
   * Queue the handling of a datagram, unless too many wait already.
   *
   * @param handshake Whether it is a handshake (HS1, HS2).
   * @param work Its handling.
   * @returns Whether it was queued.
   */
  admit(handshake: boolean, work: () => Promise<void>): boolean {
    if (this.#jobs >= MAX_JOBS || (handshake && this.#handshakeJobs >= MAX_HANDSHAKE_JOBS)) return false;
    this.#jobs++;
    if (handshake) this.#handshakeJobs++;
    this.run(() => {
      this.#jobs--;
      if (handshake) this.#handshakeJobs--;
      return work();
    });
    return true;
  }

  /**
   * Queue a poll of the link, unless one is already waiting.
   *
   * @param work The poll.
   */
  pump(work: () => Promise<void>): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    this.run(() => {
      this.#pumpQueued = false;
      return work();
    });
  }
}
