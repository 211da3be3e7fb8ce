/**
 * What one session does to the others, behind interfaces the server is given
 * rather than makes (docs/DESIGN: one composition root): who is online
 * (presence.ts), ending a user's sessions on other nodes, the abuse limits
 * (failure counters and backoff, the login and registration budgets), and
 * the routing of the UDP relay (relay_routing.ts). The
 * in-process implementations here are the embedded default; a message bus
 * joins several nodes by standing in for them, and each must then count and
 * act across every node with the semantics documented here for one.
 *
 * @module
 */

import type { AttemptOptions, RateLimiter } from "../auth/rate_limiter.ts";
import type { LoginBudget, LoginOptions, LoginRefusal } from "../auth/login_budget.ts";
import type { TokenBucket } from "../auth/token_bucket.ts";
import type { ByeCode } from "../codec/messages.ts";
import type { PresenceDirectory } from "./presence.ts";
import type { RelayRouting } from "./relay_routing.ts";

export type { AttemptOptions } from "../auth/rate_limiter.ts";
export type { LoginOptions, LoginRefusal } from "../auth/login_budget.ts";

/**
 * The abuse limits of every node together. Asynchronous, so a shared implementation can ask a bus; the
 * in-process one answers at once. A shared implementation that cannot reach what it counts with must not
 * fail open: it refuses (`UNAVAILABLE`) what it cannot count, except attempts a source or an account is
 * given for free.
 */
export interface AbuseLimits {
  /**
   * How long an attempt to prove a password must wait (the backoff strangers' and its own failures
   * caused); asked when an exchange starts.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name, known or not.
   * @param now Current time in ms.
   * @param options The valid device token shown for the account, if any: only its own failures count.
   * @returns Milliseconds to wait, 0 to go ahead.
   */
  retryAfter(address: string, account: string, now: number, options?: AttemptOptions): Promise<number>;
  /**
   * Before a proof is checked: the same question, and when the answer is "go ahead", the attempt is counted
   * as under way in the same step (so proofs racing each other, on any node, cannot all pass the gate).
   * Every attempt begun is ended with {@linkcode AbuseLimits.endProof}.
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options The device token the attempt is counted against, if any.
   * @returns Milliseconds to wait (nothing was begun), or 0 (begun).
   */
  beginProof(address: string, account: string, now: number, options?: AttemptOptions): Promise<number>;
  /**
   * A proof begun is decided: a failure counts against the source, the account and the pair (or the
   * token alone); a success forgives the pair's (or the token's) failures. A shared implementation makes
   * the count that decides here: the gate is asked again in the same step, and when it says wait, nothing
   * is counted and the proof's outcome must not be told (in-process, every proof begun is counted).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param correct Whether the proof was correct.
   * @param options The same options as the matching {@linkcode AbuseLimits.beginProof}.
   * @param spend For a correct proof of a `LOGIN`: also {@linkcode AbuseLimits.spendLogin} with these
   *   options, in the same step (a shared implementation writes each key once for both).
   * @returns `null` when counted; otherwise why not (the backoff's wait, or with `spend` and a correct
   *   proof, the budget `spendLogin` names).
   * @throws {ProtocolError} `UNAVAILABLE` when the count cannot be made (a shared implementation that
   *   cannot reach the others, past the free attempts).
   */
  endProof(
    address: string,
    account: string,
    now: number,
    correct: boolean,
    options?: AttemptOptions,
    spend?: LoginOptions,
  ): Promise<ProofRefusal | null>;
  /**
   * Take one registration from the source's budget.
   *
   * @param address Source IP address.
   * @param now Current time in ms.
   * @returns 0 when taken, else milliseconds until one is available (nothing taken).
   */
  takeRegistration(address: string, now: number): Promise<number>;
  /**
   * At `LOGIN`, before any exchange: whether a successful login could be admitted now (spends nothing;
   * see `LoginBudget.check`).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` to go ahead, else whose budget is spent and for how long.
   */
  checkLogin(
    address: string,
    account: string,
    now: number,
    options?: LoginOptions,
  ): Promise<LoginRefusal | null>;
  /**
   * At `LOGIN` without a device token, before any exchange: {@linkcode AbuseLimits.checkLogin} and, when it
   * lets the login go ahead, {@linkcode AbuseLimits.retryAfter}, in one step (a shared implementation reads
   * each key once for both).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name, known or not.
   * @param now Current time in ms.
   * @returns The budgets' refusal (`null` to go ahead) and, when there is none, the backoff's wait (0 to
   *   go ahead; 0 too when refused, the backoff not asked).
   */
  loginGate(address: string, account: string, now: number): Promise<LoginGate>;
  /**
   * After a correct proof of a `LOGIN`: count it against the source's and the account's budgets, or refuse
   * it (see `LoginBudget.spend`).
   *
   * @param address Source IP address.
   * @param account Lower-cased account name.
   * @param now Current time in ms.
   * @param options Whether a valid device token was shown.
   * @returns `null` when admitted (and counted), else whose budget is spent and for how long.
   */
  spendLogin(
    address: string,
    account: string,
    now: number,
    options?: LoginOptions,
  ): Promise<LoginRefusal | null>;
}

/**
 * Why {@linkcode AbuseLimits.endProof} did not count a proof (nothing of its outcome may be told): the
 * backoff, as the proof's keys stand when it ends (a shared implementation decides there), or a login
 * budget spent (`spend`).
 */
export type ProofRefusal = { of: "backoff"; waitMs: number } | LoginRefusal;

/** What {@linkcode AbuseLimits.loginGate} answers. */
export interface LoginGate {
  /** Whose login budget is spent and for how long, or `null` to go ahead. */
  refusal: LoginRefusal | null;
  /** Milliseconds the backoff says to wait (0 to go ahead, and when `refusal` is set). */
  waitMs: number;
}

/** The parts of {@linkcode LocalAbuseLimits}. */
export interface LocalAbuseLimitsParts {
  /** Failure counters and backoff. */
  limiter: RateLimiter;
  /** Registrations per source. */
  registrations: TokenBucket;
  /** Successful logins per source and per account. */
  logins: LoginBudget;
}

/**
 * The abuse limits of one process, in its memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LoginBudget } from "../auth/login_budget.ts";
 * import { RateLimiter } from "../auth/rate_limiter.ts";
 * import { TokenBucket } from "../auth/token_bucket.ts";
 * import { LocalAbuseLimits } from "./shared_parts.ts";
 * const limits = new LocalAbuseLimits({
 *   limiter: new RateLimiter({ freeFailures: 1, baseMs: 1000, maxMs: 60_000, forgetAfterMs: 3_600_000, maxEntries: 100 }),
 *   registrations: new TokenBucket({ perMinute: 10 }),
 *   logins: new LoginBudget({ perSourcePerMinute: 10, perAccountPerMinute: 10 }),
 * });
 * assert((await limits.beginProof("10.0.0.1", "alice", 0)) === 0);
 * await limits.endProof("10.0.0.1", "alice", 0, false);
 * assert((await limits.retryAfter("10.0.0.1", "alice", 0)) === 1000, "one free failure, then the backoff");
 * ```
 */
export class LocalAbuseLimits implements AbuseLimits {
  #p: LocalAbuseLimitsParts;

  /**
   * Wrap the in-process counters.
   *
   * @param parts The counters (the caller may keep them, to look inside in tests).
   */
  constructor(parts: LocalAbuseLimitsParts) {
    this.#p = parts;
  }

  retryAfter(address: string, account: string, now: number, options: AttemptOptions = {}): Promise<number> {
    return Promise.resolve(this.#p.limiter.retryAfter(address, account, now, options));
  }

  beginProof(address: string, account: string, now: number, options: AttemptOptions = {}): Promise<number> {
    const wait = this.#p.limiter.retryAfter(address, account, now, options);
    if (wait === 0) this.#p.limiter.begin(address, account, options);
    return Promise.resolve(wait);
  }

  endProof(
    address: string,
    account: string,
    now: number,
    correct: boolean,
    options: AttemptOptions = {},
    spend?: LoginOptions,
  ): Promise<ProofRefusal | null> {
    this.#p.limiter.end(address, account, now, correct, options);
    return Promise.resolve(correct && spend ? this.#p.logins.spend(address, account, now, spend) : null);
  }

  takeRegistration(address: string, now: number): Promise<number> {
    return Promise.resolve(this.#p.registrations.take(address, now));
  }

  checkLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    return Promise.resolve(this.#p.logins.check(address, account, now, options));
  }

  loginGate(address: string, account: string, now: number): Promise<LoginGate> {
    const refusal = this.#p.logins.check(address, account, now);
    const waitMs = refusal ? 0 : this.#p.limiter.retryAfter(address, account, now);
    return Promise.resolve({ refusal, waitMs });
  }

  spendLogin(
    address: string,
    account: string,
    now: number,
    options: LoginOptions = {},
  ): Promise<LoginRefusal | null> {
    return Promise.resolve(this.#p.logins.spend(address, account, now, options));
  }
}

/** This node's own sessions, as a {@linkcode SessionDirectory} acts on them for the other nodes. */
export interface SessionsHere {
  /**
   * End every session of a user on this node.
   *
   * @param userKey Lower-cased account name.
   * @param code The code the sessions' `BYE` carries.
   * @param reason Its text.
   * @returns How many sessions it ended.
   */
  endUser(userKey: string, code: ByeCode, reason: string): number;
  /**
   * End every logged-in session on this node (it lost touch with the other nodes, so it can no longer end
   * them when another node asks).
   *
   * @param code The code the sessions' `BYE` carries.
   * @param reason Its text.
   * @returns How many sessions it ended.
   */
  endAll(code: ByeCode, reason: string): number;
  /**
   * Re-check the logged-in sessions against the store soon (this node is back on the bus, and may have
   * missed another node's request meanwhile): those whose account changed or is gone end.
   */
  recheck?(): void;
}

/**
 * Ends a user's sessions on the other nodes (this node's own sessions are ended by its registry). `PASSWD`
 * and `DELETE` wait for it before they reply, so an old password's sessions are gone everywhere when the
 * client hears "done". The wait is bounded: when it cannot vouch for every node it fails (`UNAVAILABLE`),
 * and each node's periodic re-check of its sessions against the store (session_recheck.ts) is what ends
 * them.
 */
export interface SessionDirectory {
  /**
   * End every session of a user on the other nodes; resolves once each node has ended them (or has
   * given up its own sessions because it lost touch with the others).
   *
   * @param userKey Lower-cased account name.
   * @param code The code the sessions' `BYE` carries.
   * @param reason Its text.
   * @returns How many sessions the other nodes ended.
   * @throws {ProtocolError} `UNAVAILABLE` when this node lost touch with the others (its own sessions are
   *   ended then, the one asking included), or when another node did not answer in time (its sessions end
   *   at its next re-check against the store: session_recheck.ts).
   */
  endElsewhere(userKey: string, code: ByeCode, reason: string): Promise<number>;
  /**
   * Serve the other nodes' requests to end sessions here.
   *
   * @param here Ends this node's sessions.
   */
  serve(here: SessionsHere): void;
  /**
   * Why this node may not log anyone in now, or `null` when it may. A node that lost touch with the others
   * could not end a session when another node's `PASSWD` or `DELETE` asks, so it refuses logins
   * (`UNAVAILABLE`) until it is back.
   *
   * @returns The reason, or `null`.
   */
  loginsRefused(): string | null;
}

/** One node alone: there is nobody else to tell. */
export const NO_OTHER_NODES: SessionDirectory = {
  endElsewhere: () => Promise.resolve(0),
  serve: () => {},
  loginsRefused: () => null,
};

/**
 * Everything the server shares with other sessions beyond its own process, made by the composition root
 * (cmd/server.ts) and handed to {@linkcode AuthchatServer.start}. The server closes none of them: whoever
 * made them closes them after the server has stopped.
 */
export interface SharedParts {
  /** Who is online, on every node. */
  presence: PresenceDirectory;
  /** Ending a user's sessions on other nodes. */
  sessions: SessionDirectory;
  /** Failure counters, backoff and budgets, counted across every node. */
  limits: AbuseLimits;
  /**
   * Relay ids, `PEER` answers and relayed datagrams across nodes (relay_routing.ts); absent: this node
   * alone (`SINGLE_NODE_RELAY`).
   */
  relay?: RelayRouting;
}
