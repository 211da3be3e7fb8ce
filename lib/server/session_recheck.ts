/**
 * The safety net under `PASSWD` and `DELETE`: every node re-checks its
 * logged-in sessions against the store now and then, and ends those whose
 * account's verifier is no longer the one they logged in with
 * (`BYE PASSWORD_CHANGED`) or whose account is gone (`BYE ACCOUNT_DELETED`),
 * the codes a `PASSWD` or `DELETE` gives.
 *
 * `PASSWD` and `DELETE` end the account's other sessions themselves, on every
 * node, before they reply (session_directory, shared_parts.ts). The re-check
 * ends what that cannot vouch for: the node that asked crashed or lost the bus
 * between its store write and the other nodes' answers, the database did not
 * confirm the write (it may have committed), or another node did not answer
 * in time. So, whatever happened, a session of an old password on a node that
 * reaches the database ends within one period (`session_recheck`, default
 * 30 s) plus one pass.
 *
 * Cost: one pass over the registry's logged-in sessions and one store query
 * per {@linkcode RECHECK_BATCH} accounts (10 queries for 10,000 sessions),
 * with no timer per session; passes never overlap. A pass asked for while one
 * runs (a node back on the bus) runs once more after it.
 *
 * @module
 */

import type { UserStore } from "../store/user_store.ts";
import { SESSION_ENDINGS } from "./_account_requests.ts";
import type { Logger } from "./logger.ts";
import type { RegisteredSession, SessionRegistry } from "./session_registry.ts";

/** Accounts read in one store query. */
export const RECHECK_BATCH = 1000;

/** What one pass did. */
export interface RecheckResult {
  /** Logged-in sessions compared with the store. */
  checked: number;
  /** Sessions ended (their account changed its password or is gone). */
  ended: number;
  /** Whether the store failed the pass (the rest waits for the next one). */
  failed: boolean;
}

/** Options of {@linkcode SessionRecheck}. */
export interface SessionRecheckOptions {
  /** Accounts per store query (default {@linkcode RECHECK_BATCH}). */
  batch?: number;
}

/** A session as a pass found it, with the account it was logged in to then. */
interface Seen {
  session: RegisteredSession;
  user: string;
  id: number;
  verifier: string;
}

/**
 * Re-checks one node's logged-in sessions against the store.
 *
 * @example
 * ```ts ignore
 * const recheck = new SessionRecheck(registry, store, log);
 * setInterval(() => void recheck.run(), 30_000);
 * ```
 */
export class SessionRecheck {
  #registry: SessionRegistry;
  #store: UserStore;
  #log: Logger;
  #batch: number;
  #running: Promise<RecheckResult> | null = null;
  #again: Promise<RecheckResult> | null = null;

  /**
   * Prepare (nothing runs before {@linkcode SessionRecheck.run}).
   *
   * @param registry This node's sessions.
   * @param store The accounts.
   * @param log Where passes that end sessions or fail are logged.
   * @param options Batch size.
   */
  constructor(registry: SessionRegistry, store: UserStore, log: Logger, options: SessionRecheckOptions = {}) {
    this.#registry = registry;
    this.#store = store;
    this.#log = log;
    this.#batch = options.batch ?? RECHECK_BATCH;
  }

  /**
   * Re-check every session logged in now. While a pass runs, a call waits for one more pass after it (the
   * sessions logged in by then are its).
   *
   * @returns What the pass did; never rejects (a store failure is logged and reported in `failed`).
   */
  run(): Promise<RecheckResult> {
    if (this.#running === null) {
      const pass = this.#pass().finally(() => this.#running = null);
      this.#running = pass;
      return pass;
    }
    this.#again ??= this.#running.then(() => {
      this.#again = null;
      return this.run();
    });
    return this.#again;
  }

  async #pass(): Promise<RecheckResult> {
    const seen: Seen[] = [];
    for (const { session, user } of this.#registry.loggedIn()) {
      const account = session.account;
      if (account) seen.push({ session, user, id: account.id, verifier: account.verifier });
    }
    let ended = 0;
    for (let start = 0; start < seen.length; start += this.#batch) {
      const batch = seen.slice(start, start + this.#batch);
      let current;
      try {
        current = await this.#store.verifiersOf([...new Set(batch.map((s) => s.id))]);
      } catch (err) {
        this.#log.warn("session_recheck_failed", {
          checked: start,
          sessions: seen.length,
          ended_sessions: ended,
          error: (err as Error).message,
        });
        return { checked: start, ended, failed: true };
      }
      for (const entry of batch) if (this.#endIfStale(entry, current.get(entry.id))) ended++;
    }
    if (ended > 0) this.#log.info("session_recheck", { checked: seen.length, ended_sessions: ended });
    return { checked: seen.length, ended, failed: false };
  }

  /** End a session whose account no longer has the verifier it logged in with; whether it did. */
  #endIfStale(seen: Seen, now: { nameKey: string; verifier: string } | undefined): boolean {
    const account = seen.session.account;
    // Changed while the store was asked (its own PASSWD, a logout, a new login): the next pass sees it.
    if (!account || account.id !== seen.id || account.verifier !== seen.verifier) return false;
    let ending: (typeof SESSION_ENDINGS)[keyof typeof SESSION_ENDINGS];
    // Gone, or its row id now another account's (SQLite may give a deleted account's id again).
    if (now === undefined || now.nameKey !== seen.user) ending = SESSION_ENDINGS.delete;
    else if (now.verifier !== seen.verifier) ending = SESSION_ENDINGS.passwd;
    else return false;
    const [code, reason] = ending;
    this.#registry.endSession(seen.session, code, reason);
    return true;
  }
}
