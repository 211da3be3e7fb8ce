/**
 * Presence across nodes: users come online on one node at a steady rate, and a session on another node times
 * each notice. Each user logs in (a full SCRAM exchange, over a raw connection from an address of its own:
 * no identity key, so no Argon2id on either side) and logs out at once; after the server's linger (1 s) the
 * user goes offline, a second presence change. So `perSecond` logins make twice as many presence changes a
 * second, online and offline, all of which reach the watching session; only the online ones can be timed
 * from outside.
 *
 * @module
 */

import type { SaltedPasswordCache } from "../lib/auth/scram_client.ts";
import type { Account } from "./_auth_scenarios.ts";
import { percentile } from "./_measure.ts";
import { rawHello, rawLogin, rawLogout, userAddress } from "./_raw_login.ts";

/** How long after a login an account may log in again: its offline notice (1 s linger) and the 500 ms
 * the others hear of one user at most once in are both over by then, so each login is one online notice. */
export const REUSE_MS = 3000;

/**
 * How many accounts a run of {@linkcode presenceLatency} needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { comersNeeded } from "./_presence_scenario.ts";
 * assert(comersNeeded(500, 1000, 4000) === 1500, "each used again after 3 s");
 * assert(comersNeeded(100, 200, 700) === 90, "each once");
 * ```
 *
 * @param perSecond Logins a second.
 * @param rampMs The untimed logins' time.
 * @param durationMs The timed logins' time.
 * @returns The number.
 */
export function comersNeeded(perSecond: number, rampMs: number, durationMs: number): number {
  const interval = 1000 / perSecond;
  const total = Math.round(rampMs / interval) + Math.round(durationMs / interval);
  return Math.min(total, Math.ceil(perSecond * REUSE_MS / 1000));
}

/** Options of {@linkcode presenceLatency}. */
export interface PresenceOptions {
  /** The accounts that come online (at least `perSecond` × {@linkcode REUSE_MS} / 1000 of them). */
  comers: Account[];
  /** The account of the watching session. */
  watcher: Account;
  /** TCP port of the node the users come online on. */
  comePort: number;
  /** TCP port of the node the watching session is on. */
  watchPort: number;
  /** Logins a second (presence changes: twice that). */
  perSecond: number;
  /** How long the timed logins go on, ms. */
  durationMs: number;
  /** Logins before that, not timed (the offline notices start a linger's time after the first login). */
  rampMs: number;
  /** Connections the logins take turns on. */
  connections: number;
}

/** What the scenario found. */
export interface PresenceResult {
  /** Login reply on node 1 to the notice on node 2, ms. */
  p50: number;
  p99: number;
  /** The PROOF sent to the notice, ms: the login's own work included (an upper bound). */
  fromProofP99: number;
  /** Presence changes (online and offline notices) the watcher heard a second while the timed logins ran. */
  eventsPerSecond: number;
  /** Logins timed. */
  samples: number;
  /** Logins that started later than their time because every connection was busy. */
  late: number;
}

/** One timed login: when its reply came, when the watcher heard of it. */
interface Sample {
  proofAt?: number;
  replyAt?: number;
  noticeAt?: number;
}

/**
 * Users come online on one node at `perSecond`, each logging out at once; a session on the other node
 * hears of each. Every account logs in once first (untimed: the client's PBKDF2, the server's first look at
 * the account), then, after a wait for those to go offline, the timed run.
 *
 * @param o The options.
 * @returns The latencies from the LOGIN reply on one node to the notice on the other.
 * @throws {Error} When more than 1% of the online notices never come.
 */
export async function presenceLatency(o: PresenceOptions): Promise<PresenceResult> {
  const interval = 1000 / o.perSecond;
  const ramp = Math.round(o.rampMs / interval);
  const total = ramp + Math.round(o.durationMs / interval);
  if (o.comers.length < comersNeeded(o.perSecond, o.rampMs, o.durationMs)) {
    throw new RangeError(`${o.comers.length} accounts are too few for ${o.perSecond} logins a second`);
  }
  const cache: SaltedPasswordCache = new Map();
  // Each connection from an address of its own, as users' would be: the limits count logins per address.
  const pool = await Promise.all(
    Array.from({ length: o.connections }, (_, i) => rawHello(o.comePort, userAddress(i))),
  );
  const watcher = await rawHello(o.watchPort, userAddress(o.connections));
  /** The timed logins, and the one of each user under way. */
  const samples: Sample[] = [];
  const current = new Map<string, Sample>();
  let heard = 0;
  const counted = { from: Infinity, to: Infinity };
  try {
    await rawLogin(watcher, o.watcher, cache);
    watcher.onNotice = (message, at) => {
      if (message.op !== "PRESENCE") return;
      if (at >= counted.from && at <= counted.to) heard++;
      const sample = message.state === "online" ? current.get(message.user) : undefined;
      if (sample && sample.noticeAt === undefined) sample.noticeAt = at;
    };
    // Untimed: each account once (the client's PBKDF2 is cached then), then everyone offline again.
    const used = o.comers.slice(0, Math.min(total, o.comers.length));
    let next = 0;
    await Promise.all(pool.map(async (conn) => {
      for (let i = next++; i < used.length; i = next++) {
        await rawLogin(conn, used[i]!, cache);
        await rawLogout(conn);
      }
    }));
    await new Promise((resolve) => setTimeout(resolve, REUSE_MS));

    const idle = [...pool];
    const freed: (() => void)[] = [];
    const running: Promise<void>[] = [];
    let late = 0;
    const start = performance.now();
    counted.from = start + o.rampMs;
    for (let k = 0; k < total; k++) {
      const due = start + k * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      if (idle.length === 0) {
        late++;
        await new Promise<void>((resolve) => freed.push(resolve));
      }
      const conn = idle.pop()!;
      const account = o.comers[k % o.comers.length]!;
      const sample: Sample = {};
      // The ramp's logins make the changes of the timed run's first second; they are not timed.
      if (k >= ramp) samples.push(sample);
      current.set(account.user, sample);
      running.push((async () => {
        try {
          Object.assign(sample, await rawLogin(conn, account, cache));
          await rawLogout(conn);
        } finally {
          idle.push(conn);
          freed.shift()?.();
        }
      })());
    }
    await Promise.all(running);
    counted.to = performance.now();
    const seconds = (counted.to - counted.from) / 1000;
    // The last notices are on their way (on a busy machine, seconds late).
    const deadline = Date.now() + 5000;
    while (samples.some((s) => s.noticeAt === undefined) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // A notice read before the reply on the other connection (both in this process) counts as 0: the node
    // writes the user's presence before it sends the reply, and the two race.
    const heardOf = samples.filter((s) => s.noticeAt !== undefined);
    const latencies = heardOf.map((s) => Math.max(0, s.noticeAt! - s.replyAt!));
    const fromProof = heardOf.map((s) => s.noticeAt! - s.proofAt!);
    const missed = samples.length - latencies.length;
    if (samples.length === 0 || missed > samples.length / 100) {
      throw new Error(`presence: ${missed} of ${samples.length} online notices never came`);
    }
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      fromProofP99: percentile(fromProof, 99),
      eventsPerSecond: heard / seconds,
      samples: latencies.length,
      late,
    };
  } finally {
    for (const conn of [...pool, watcher]) conn.close();
  }
}
