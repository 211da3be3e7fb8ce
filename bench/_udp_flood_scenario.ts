/**
 * Real logins over UDP sessions while a flood of spoofed first datagrams runs (`udp_flood_login_p99_ms`):
 * one login at a time, each a new UDP session (INIT, RETRY with the proof of work the server's load asks,
 * ACCEPT, FINISH, then HELLO, LOGIN and PROOF inside), timed from the first INIT to the `LOGIN` reply. The
 * time a login spent on its proof of work is measured apart, so the figure compared with the target is the
 * login's time without it, as the target reads (50 ms plus the proof of work asked).
 *
 * @module
 */

import type { HandshakeCounts } from "../lib/client/open_udp_session.ts";
import { type Account, type AuthScenarioOptions, connectAndLogin } from "./_auth_scenarios.ts";
import { percentile } from "./_measure.ts";

/** What {@linkcode floodLogins} measured. */
export interface FloodLoginsResult {
  /** Logins timed. */
  count: number;
  /** Logins that failed (no answer in the connect timeout: a lost datagram too many, or a proof of work that
   * outlived its cookie); not in the latencies. */
  failed: number;
  /** p50 and p99 of the whole login, proof of work included, ms. */
  p50: number;
  p99: number;
  /** p50 and p99 of the login without the time its proof of work took, ms. */
  withoutPowP50: number;
  withoutPowP99: number;
  /** The median time a proof of work took, ms. */
  powP50: number;
  /** The highest difficulty asked (leading zero bits), and the lowest. */
  difficultyMax: number;
  difficultyMin: number;
}

/**
 * Log in over UDP sessions one at a time for `o.durationMs`.
 *
 * @param o Scenario options: the target's `udpPort`, the accounts.
 * @returns The latencies and the proof of work asked.
 */
export async function floodLogins(o: AuthScenarioOptions): Promise<FloodLoginsResult> {
  const whole: number[] = [];
  const withoutPow: number[] = [];
  const pow: number[] = [];
  const difficulties: number[] = [];
  let failed = 0;
  const end = performance.now() + o.durationMs;
  for (let i = 0; (performance.now() < end || whole.length < 5) && failed < 20; i++) {
    const account: Account = o.accounts[i % o.accounts.length]!;
    const counts: Required<HandshakeCounts> = {
      initsSent: 0,
      retries: 0,
      ignored: 0,
      difficulty: 0,
      powMs: 0,
    };
    const t0 = performance.now();
    let client;
    try {
      client = await connectAndLogin({ ...o, udpSession: { ...o.udpSession, counts } }, "udp", account);
    } catch {
      failed++;
      continue;
    }
    const ms = performance.now() - t0;
    await client.close();
    whole.push(ms);
    withoutPow.push(ms - counts.powMs);
    pow.push(counts.powMs);
    difficulties.push(counts.difficulty);
  }
  return {
    count: whole.length,
    failed,
    p50: percentile(whole, 50),
    p99: percentile(whole, 99),
    withoutPowP50: percentile(withoutPow, 50),
    withoutPowP99: percentile(withoutPow, 99),
    powP50: percentile(pow, 50),
    difficultyMax: Math.max(...difficulties),
    difficultyMin: Math.min(...difficulties),
  };
}
