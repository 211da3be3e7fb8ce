/**
 * Whether `LOGIN` tells by its timing which names have an account: the `CHALLENGE` latency for accounts and
 * for names nobody has, sampled in interleaved pairs on one open connection, compared with Welch's test.
 *
 * @module
 */

import { encodeBase64 } from "../lib/codec/base64.ts";
import { PROTOCOL_VERSION } from "../lib/codec/messages.ts";
import type { AuthScenarioOptions } from "./_auth_scenarios.ts";
import { RawConnection } from "./_raw_connection.ts";
import { percentile, welchZ } from "./_measure.ts";

/** What the scenario found (samples above the pooled 99th percentile left out). */
export interface KnownUnknownResult {
  /** Welch's statistic of the mean latencies, known minus unknown (positive: accounts answer later). */
  z: number;
  /** Mean `CHALLENGE` latency for accounts, µs. */
  knownMeanUs: number;
  /** Mean `CHALLENGE` latency for unknown names, µs. */
  unknownMeanUs: number;
}

/** A name of the same length as `name` that is not one of `taken`. */
function unknownLike(name: string, taken: Set<string>): string {
  for (const first of "xyzqj") {
    const candidate = first + name.slice(1);
    if (!taken.has(candidate)) return candidate;
  }
  throw new Error(`No unknown name like ${name}`);
}

/**
 * Time `LOGIN` → `CHALLENGE` for accounts and for unknown names of the same length, `samples` of each
 * after `warmUp` of each (not counted), in pairs whose order is drawn at random. Each sample is one
 * `LOGIN` on one open TCP connection; a request that is not a `PROOF` then abandons the exchange, so no
 * failure is counted and no backoff starts. The samples above the 99th percentile of both kinds together
 * are left out, then the means compared with Welch's test.
 *
 * @param o Scenario options (the accounts to use; their names are all taken).
 * @param samples Samples of each kind.
 * @param warmUp Pairs sent first and not counted (the JIT).
 * @returns Welch's statistic and the means.
 * @throws {Error} When a reply is not the `CHALLENGE` or the `ERROR` expected.
 */
export async function knownUnknownLogins(
  o: AuthScenarioOptions,
  samples: number,
  warmUp: number,
): Promise<KnownUnknownResult> {
  const taken = new Set(o.accounts.map((a) => a.user));
  const known: number[] = [];
  const unknown: number[] = [];
  const conn = await RawConnection.open(o.target.tcpPort);
  try {
    const hello = await conn.request({ op: "HELLO", version: PROTOCOL_VERSION });
    if (hello.reply.op !== "HELLO") throw new Error(`HELLO answered with ${JSON.stringify(hello.reply)}`);
    const challenge = async (user: string): Promise<number> => {
      const nonce = encodeBase64(crypto.getRandomValues(new Uint8Array(18)));
      const login = await conn.request({
        op: "LOGIN",
        mechanism: "SCRAM-SHA-256",
        data: `n,,n=${user},r=${nonce}`,
      });
      if (login.reply.op !== "CHALLENGE") {
        throw new Error(`LOGIN answered with ${JSON.stringify(login.reply)}`);
      }
      const abandon = await conn.request({ op: "IS_LOGGED" });
      if (abandon.reply.op !== "ERROR" || abandon.reply.code !== "OUT_OF_ORDER") {
        throw new Error(`IS_LOGGED during an exchange answered with ${JSON.stringify(abandon.reply)}`);
      }
      return login.ms;
    };
    for (let i = 0; i < warmUp + samples; i++) {
      const account = o.accounts[i % o.accounts.length]!.user;
      const names = [account, unknownLike(account, taken)];
      if (Math.random() < 0.5) names.reverse();
      for (const name of names) {
        const ms = await challenge(name);
        if (i >= warmUp) (name === account ? known : unknown).push(ms);
      }
    }
  } finally {
    conn.close();
  }
  // Stalls of milliseconds (a collection, the scheduler) would swamp a difference of microseconds in the
  // variance: both kinds lose the samples above one cut, the 99th percentile of them all.
  const cut = percentile([...known, ...unknown], 99);
  const k = known.filter((ms) => ms <= cut);
  const u = unknown.filter((ms) => ms <= cut);
  const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
  return { z: welchZ(k, u), knownMeanUs: mean(k) * 1000, unknownMeanUs: mean(u) * 1000 };
}
