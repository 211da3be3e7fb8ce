/**
 * The scenarios against a running `authchat server`: new-connection logins over TCP and TLS, login latency,
 * repeated logins on open connections, and many concurrent sessions. Every login is a full SCRAM exchange
 * the server verifies; like a real client program, the load generator keeps each account's SaltedPassword
 * (RFC 5802 allows it) and opened identity key between its connections.
 *
 * @module
 */

import { AuthchatClient } from "../lib/client/authchat_client.ts";
import type { ClientCache, ClientOptions } from "../lib/client/authchat_client.ts";
import type { TrustOptions, UdpSessionOptions } from "../lib/client/open_connection.ts";
import { closedLoop, forEach, percentile, rate } from "./_measure.ts";
import type { LoopResult } from "./_measure.ts";

/** An account to log in as. */
export interface Account {
  user: string;
  password: string;
}

/** Where the server is and how its keys are trusted. */
export interface Target {
  tcpPort: number;
  tlsPort: number;
  /** The server's UDP port, for sessions over UDP (absent: none measured). */
  udpPort?: number;
  /** Fingerprint of the sealing key (TCP) and of the certificate (TLS). */
  sealFingerprint: string;
  certFingerprint: string;
}

/** Options every scenario takes. */
export interface AuthScenarioOptions {
  target: Target;
  /**
   * Several servers (the nodes of a cluster) to spread the clients over: worker or session `i` uses
   * `spread[i % spread.length]` instead of `target`.
   */
  spread?: Target[];
  accounts: Account[];
  clients: number;
  durationMs: number;
  cache: ClientCache;
  /** Options of the UDP sessions' opening (the flood scenario counts the proofs of work asked). */
  udpSession?: UdpSessionOptions;
}

/** How a scenario's clients reach the server. */
export type Via = "tcp" | "tls" | "udp";

/**
 * The options of worker or session `i`: its server is the one `spread` gives it, when spread.
 *
 * @param o Scenario options.
 * @param i The worker's or session's index.
 * @returns The options with its target.
 */
export function spreadTo(o: AuthScenarioOptions, i: number): AuthScenarioOptions {
  return o.spread?.length ? { ...o, target: o.spread[i % o.spread.length]! } : o;
}

/**
 * Connect and say HELLO, as the real client does (it also sends its first keepalive at once).
 *
 * @param o Scenario options.
 * @param via The transport: TCP, TLS or a UDP session.
 * @returns The client.
 */
export function connect(o: AuthScenarioOptions, via: Via): Promise<AuthchatClient> {
  return AuthchatClient.connect(clientOptions(o, via));
}

/**
 * Connect and log in as the real client does it (`LOGIN` right behind `HELLO`).
 *
 * @param o Scenario options.
 * @param via The transport: TCP, TLS or a UDP session.
 * @param account Who.
 * @returns The logged-in client.
 */
export function connectAndLogin(
  o: AuthScenarioOptions,
  via: Via,
  account: Account,
): Promise<AuthchatClient> {
  return AuthchatClient.connectAndLogin(clientOptions(o, via), account.user, account.password);
}

function clientOptions(o: AuthScenarioOptions, via: Via): ClientOptions {
  const base = { host: "127.0.0.1", cache: o.cache, ...(o.udpSession ? { udpSession: o.udpSession } : {}) };
  if (via === "udp") {
    if (o.target.udpPort === undefined) throw new Error("No UDP port to open sessions on");
    const trust: TrustOptions = { fingerprint: o.target.certFingerprint };
    return { ...base, port: o.target.udpPort, tls: false, udp: true, trust };
  }
  const tls = via === "tls";
  const trust: TrustOptions = { fingerprint: tls ? o.target.certFingerprint : o.target.sealFingerprint };
  return { ...base, port: tls ? o.target.tlsPort : o.target.tcpPort, tls, trust };
}

/**
 * Log every account in once, so the loops that follow find its keys cached (the first login of a seeded
 * account makes its identity key, with an Argon2id each); spread, on each server in turn.
 *
 * @param o Scenario options.
 */
export async function warmUp(o: AuthScenarioOptions): Promise<void> {
  await forEach(o.accounts, 4, async (account, i) => {
    const client = await connect(spreadTo(o, i), "tcp");
    try {
      await client.login(account.user, account.password);
      if (!client.chat?.identity) throw new Error(`No identity key for ${account.user}`);
    } finally {
      await client.close();
    }
  });
}

/**
 * New connections per second, each logged in with a full SCRAM exchange and closed (spread: each worker on
 * its server).
 *
 * @param o Scenario options.
 * @param via The transport: TCP, TLS or a UDP session.
 * @returns Logins per second.
 */
export async function newConnectionLogins(o: AuthScenarioOptions, via: Via): Promise<number> {
  return rate(await newConnectionLoop(o, via), `${via}_login`);
}

/**
 * The loop of {@linkcode newConnectionLogins}, its counts as they are.
 *
 * @param o Scenario options.
 * @param via The transport: TCP, TLS or a UDP session.
 * @returns What the loop measured.
 */
export function newConnectionLoop(o: AuthScenarioOptions, via: Via): Promise<LoopResult> {
  return closedLoop({
    durationMs: o.durationMs,
    concurrency: o.clients,
    op: async (worker) => {
      const client = await connectAndLogin(spreadTo(o, worker), via, o.accounts[worker % o.accounts.length]!);
      await client.close();
    },
  });
}

/**
 * The latency of one new-connection login (connect to logged in), one login at a time.
 *
 * @param o Scenario options.
 * @param via The transport (TLS in the login scenario; UDP sessions during the flood).
 * @returns p50 and p99 in ms, and how many logins were timed.
 */
export async function loginLatency(
  o: AuthScenarioOptions,
  via: Via = "tls",
): Promise<{ p50: number; p99: number; count: number }> {
  const latencies: number[] = [];
  const r = await closedLoop({
    durationMs: o.durationMs,
    concurrency: 1,
    op: async () => {
      const account = o.accounts[latencies.length % o.accounts.length]!;
      const t0 = performance.now();
      const client = await connectAndLogin(o, via, account);
      latencies.push(performance.now() - t0);
      await client.close();
    },
  });
  rate(r, `${via} login latency`);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length };
}

/**
 * Logins per second on connections that stay open: each logs in again as soon as its last login ended.
 *
 * @param o Scenario options.
 * @returns Logins per second.
 */
export async function reauth(o: AuthScenarioOptions): Promise<number> {
  const clients = await Promise.all(Array.from({ length: o.clients }, () => connect(o, "tcp")));
  try {
    const r = await closedLoop({
      durationMs: o.durationMs,
      concurrency: o.clients,
      op: async (worker) => {
        const account = o.accounts[worker % o.accounts.length]!;
        await clients[worker]!.login(account.user, account.password);
      },
    });
    return rate(r, "reauth");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** What the sessions scenario found. */
export interface SessionsResult {
  sessions: number;
  p99: number;
}

/**
 * Open and log in `count` sessions (spread over the accounts), call `ready` while all are up, then time one
 * `IS_LOGGED` round trip on every session, `clients` at a time. The sessions are left open: the harness
 * stops the server before they go (or it would tell each one).
 *
 * @param o Scenario options.
 * @param count Sessions to hold.
 * @param ready Called with every session logged in; the figures are taken after it resolves.
 * @returns Sessions held and the p99 of the round trips.
 */
export async function sessions(
  o: AuthScenarioOptions,
  count: number,
  ready: () => Promise<void>,
): Promise<SessionsResult> {
  const held: AuthchatClient[] = [];
  const logins = Array.from({ length: count }, (_, i) => o.accounts[i % o.accounts.length]!);
  await forEach(logins, o.clients, async (account, i) => {
    held.push(await connectAndLogin(spreadTo(o, i), "tcp", account));
  });
  await ready();
  const latencies: number[] = [];
  await forEach(held, o.clients, async (client) => {
    const t0 = performance.now();
    const state = await client.isLogged();
    latencies.push(performance.now() - t0);
    if (!state.loggedIn) throw new Error("A held session was logged out");
  });
  return { sessions: latencies.length, p99: percentile(latencies, 99) };
}
