/**
 * Logins over raw connections (_raw_connection.ts): HELLO, a full SCRAM exchange the server verifies, LOGOUT;
 * the addresses users come from; and a loop of such logins on new connections, each worker from an address
 * of its own, spread over several servers.
 *
 * @module
 */

import { ScramClient } from "../lib/auth/scram_client.ts";
import type { SaltedPasswordCache } from "../lib/auth/scram_client.ts";
import { SCRAM_SHA_256 } from "../lib/auth/scram_server.ts";
import { PROTOCOL_VERSION } from "../lib/codec/messages.ts";
import type { ServerMessage } from "../lib/codec/messages.ts";
import type { Account } from "./_auth_scenarios.ts";
import { closedLoop } from "./_measure.ts";
import type { LoopResult } from "./_measure.ts";
import { RawConnection } from "./_raw_connection.ts";

/**
 * The `i`th address of the users: 127.1.0.1, 127.1.0.2, …, 250 to a /24 (every one is this machine's).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { userAddress } from "./_raw_login.ts";
 * assert(userAddress(0) === "127.1.0.1" && userAddress(250) === "127.1.1.1");
 * ```
 *
 * @param i The index (below 64,000).
 * @returns The address.
 */
export function userAddress(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function unexpected(request: string, reply: ServerMessage): Error {
  return new Error(`${request} answered with ${JSON.stringify(reply)}`);
}

/**
 * Connect and say HELLO.
 *
 * @param port The server's TCP port.
 * @param from The address to connect from.
 * @returns The connection.
 */
export async function rawHello(port: number, from?: string): Promise<RawConnection> {
  const conn = await RawConnection.open(port, from === undefined ? {} : { from });
  try {
    const { reply } = await conn.request({ op: "HELLO", version: PROTOCOL_VERSION });
    if (reply.op !== "HELLO") throw unexpected("HELLO", reply);
    return conn;
  } catch (err) {
    conn.close();
    throw err;
  }
}

/**
 * Log in with a full SCRAM exchange (the server's signature checked).
 *
 * @param conn A connection past HELLO.
 * @param account Who.
 * @param cache The client's SaltedPasswords (RFC 5802 lets a client keep them).
 * @returns The times (`performance.now()`) the PROOF was sent and the LOGIN reply read.
 */
export async function rawLogin(
  conn: RawConnection,
  account: Account,
  cache: SaltedPasswordCache,
): Promise<{ proofAt: number; replyAt: number }> {
  const scram = new ScramClient({
    username: account.user,
    password: account.password,
    serverMechanisms: [SCRAM_SHA_256],
    cache,
  });
  const challenge = await conn.request({ op: "LOGIN", mechanism: scram.mechanism, data: scram.first });
  if (challenge.reply.op !== "CHALLENGE") throw unexpected("LOGIN", challenge.reply);
  const data = await scram.final(challenge.reply.data);
  const proofAt = performance.now();
  const proof = await conn.request({ op: "PROOF", data });
  const replyAt = performance.now();
  if (proof.reply.op !== "LOGIN") throw unexpected("PROOF", proof.reply);
  scram.verify(proof.reply.data);
  return { proofAt, replyAt };
}

/**
 * Log out; the connection stays open.
 *
 * @param conn A logged-in connection.
 */
export async function rawLogout(conn: RawConnection): Promise<void> {
  const { reply } = await conn.request({ op: "LOGOUT" });
  if (reply.op !== "LOGOUT") throw unexpected("LOGOUT", reply);
}

/**
 * New connections, each logged in and closed, by `clients` workers: worker `w` comes from
 * {@linkcode userAddress}(w), logs in as account `w` (modulo their number) to server `w` (modulo theirs).
 *
 * @param o The servers' TCP ports, the accounts, workers and duration.
 * @returns What the loop measured.
 */
export async function spreadSourceLogins(o: {
  ports: number[];
  accounts: Account[];
  clients: number;
  durationMs: number;
}): Promise<LoopResult> {
  const cache: SaltedPasswordCache = new Map();
  const login = async (w: number) => {
    const conn = await rawHello(o.ports[w % o.ports.length]!, userAddress(w));
    try {
      await rawLogin(conn, o.accounts[w % o.accounts.length]!, cache);
    } finally {
      conn.close();
    }
  };
  // Once each first: the client's PBKDF2 is not part of the figure.
  await Promise.all(Array.from({ length: o.clients }, (_, w) => login(w)));
  return await closedLoop({ durationMs: o.durationMs, concurrency: o.clients, op: login });
}
