/**
 * Opening a whole session over UDP (docs/PROTOCOL.md section 20): a UDP socket on an ephemeral port, the
 * INIT and its RETRYs (a cookie, a proof of work when the server is under load), the signed ACCEPT, the
 * server's certificate checked against what the user trusts before anything more is sent (20.10), then
 * the session's byte stream, FINISH resent until the server's first RECORD opens. The result is an
 * {@linkcode OpenedConnection} like TCP's and TLS's: the client engine runs on it unchanged, with SCRAM
 * bound to the handshake (`authchat-udp-exporter`, 20.9).
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { DEFAULT_PUZZLE_CAP } from "../crypto/udp_puzzle.ts";
import type { PuzzleProgress } from "../crypto/udp_puzzle.ts";
import type { RecordProtectionOptions } from "../crypto/udp_record_protection.ts";
import { CLIENT_KEEPALIVE_MS, UdpSessionStream } from "../transport/udp_session_stream.ts";
import type { UdpSessionStreamOptions } from "../transport/udp_session_stream.ts";
import { udpHandshake } from "./_udp_handshake.ts";
import type { HandshakeCounts } from "./_udp_handshake.ts";
import { UdpLink } from "./_udp_link.ts";
import { UdpSessionConnection } from "./_udp_session_connection.ts";
import { connectErrorFrom } from "./connect_error.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "./endpoint.ts";
import type { Endpoint } from "./endpoint.ts";
import type { OpenedConnection } from "./opened_connection.ts";
import { checkUdpCertificate } from "./server_trust.ts";
import type { TrustOptions } from "./server_trust.ts";

export { UdpSessionConnection } from "./_udp_session_connection.ts";
export type { HandshakeCounts } from "./_udp_handshake.ts";

/** The default port of UDP sessions: the server's UDP port. */
export const DEFAULT_UDP_PORT = 1991;
/**
 * The first pause before an unanswered INIT is sent again (then 2×, up to 2 s): ten 1200-byte INITs a
 * second at most, and a first datagram lost to a server's full socket buffer (a flood) costs a tenth of a
 * second.
 */
export const DEFAULT_RETRANSMIT_MS = 100;
/** The reliable layer's first retransmission timeout: three handshake round trips, within these bounds, ms. */
const INITIAL_RTO_BOUNDS = [30, 200] as const;

/** Options of {@linkcode openUdpSession}. */
export interface UdpSessionOptions {
  /** Highest proof-of-work difficulty accepted, in leading zero bits (default 24). */
  puzzleCap?: number;
  /** Told once a second while a proof of work takes over a second ({@linkcode puzzleProgressLine} words it). */
  onPuzzleProgress?: (progress: PuzzleProgress) => void;
  /** The clock of the proof of work's progress, in ms (tests; default `performance.now`). */
  puzzleClock?: () => number;
  /** The first pause before an unanswered INIT is sent again (default 100 ms). */
  retransmitMs?: number;
  /** Stream tuning (tests): keepalive (default 10 s), dead timeout, linger, reliable layer. */
  stream?: Pick<UdpSessionStreamOptions, "keepaliveMs" | "deadAfterMs" | "lingerMs" | "reliable">;
  /** Record layer options (tests). */
  records?: RecordProtectionOptions;
  /** Filled in with what the handshake saw (tests, diagnostics). */
  counts?: HandshakeCounts;
}

/** A UDP session opened: the connection, whose `stream` is the session's. */
export interface OpenedUdpSession extends OpenedConnection {
  /** The session's stream; its `ended` resolves once the socket is closed. */
  stream: UdpSessionConnection;
}

/**
 * The line a client prints once a second while it works on a proof of work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { puzzleProgressLine } from "./open_udp_session.ts";
 * const line = puzzleProgressLine({ attempts: 2_100_000, expected: 2 ** 22, elapsedMs: 3000 });
 * assert(line === "Proof of work: 2.1 M of 4.2 M hashes expected, 3 s");
 * ```
 *
 * @param progress Hashes tried, hashes expected, time spent.
 * @returns One line.
 */
export function puzzleProgressLine(progress: PuzzleProgress): string {
  const millions = (n: number) => `${(n / 1e6).toFixed(1)} M`;
  return `Proof of work: ${millions(progress.attempts)} of ${millions(progress.expected)} hashes expected, ` +
    `${Math.round(progress.elapsedMs / 1000)} s`;
}

/**
 * The server's address: an IP literal as it is, a name resolved by the system's resolver. A name with both
 * kinds of address gets its IPv4 one: a datagram cannot try one address and fall back to the next as a TCP
 * connect can (an unanswered INIT looks like a lost one), and the server listens on IPv4 by default.
 */
async function resolve(endpoint: Endpoint): Promise<string> {
  const bare = endpoint.host.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  try {
    addresses = await lookup(bare, { all: true });
  } catch (err) {
    throw connectErrorFrom(err, endpoint) ?? err;
  }
  const chosen = addresses.find((a) => a.family === 4) ?? addresses[0];
  if (chosen === undefined) {
    throw connectErrorFrom(new Error(`getaddrinfo ENOTFOUND ${bare}`), endpoint)!;
  }
  return chosen.address;
}

/**
 * The reliable layer's first retransmission timeout from the handshake's round trip: before a first
 * acknowledgement its default (200 ms) would make a DATA lost to a flooded server cost a login that long,
 * where the handshake has just shown how far the server is.
 */
function initialRto(rttMs: number): number {
  const [low, high] = INITIAL_RTO_BOUNDS;
  return Math.min(high, Math.max(low, Math.ceil(3 * rttMs)));
}

/**
 * Open a UDP session to `endpoint.host`:`endpoint.port`.
 *
 * @example
 * ```ts ignore
 * const opened = await openUdpSession({ host: "127.0.0.1", port: 1991, tls: false, udp: true }, { knownHosts });
 * const client = new FramedStream(opened.stream);
 * ```
 *
 * @param endpoint Where (`timeoutMs`: longest wait for each answer, default 10 s).
 * @param trust How the server's certificate is trusted: `ca`, `fingerprint`, or known_hosts (kind `udp`).
 * @param options Puzzle cap and progress, tuning.
 * @returns The connection: the session's stream, its channel binding (`authchat-udp-exporter`) and the
 *   certificate's fingerprint. Its stream's socket closes when the session ends.
 * @throws {ConnectError} `timeout` when the server does not answer, `pow_refused` when it asks for a proof
 *   of work above the cap, `unknown_host` when the name does not resolve.
 * @throws {TrustError} When the server's certificate is not trusted (nothing more is sent to it).
 */
export async function openUdpSession(
  endpoint: Endpoint,
  trust: TrustOptions,
  options: UdpSessionOptions = {},
): Promise<OpenedUdpSession> {
  const hostname = await resolve(endpoint);
  let link: UdpLink;
  try {
    link = new UdpLink({ hostname, port: endpoint.port });
  } catch (err) {
    throw connectErrorFrom(err, endpoint) ?? err;
  }
  try {
    const accepted = await udpHandshake(link, {
      endpoint,
      timeoutMs: endpoint.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      retransmitMs: options.retransmitMs ?? DEFAULT_RETRANSMIT_MS,
      puzzleCap: options.puzzleCap ?? DEFAULT_PUZZLE_CAP,
      ...(options.onPuzzleProgress ? { onPuzzleProgress: options.onPuzzleProgress } : {}),
      ...(options.puzzleClock ? { puzzleClock: options.puzzleClock } : {}),
      ...(options.records ? { records: options.records } : {}),
    }, options.counts);
    // Before the FINISH: the handshake proved the server holds the certificate's key, not that it is ours.
    await checkUdpCertificate(endpoint, accepted.server, trust);
    const stream = new UdpSessionStream({
      records: accepted.session.records,
      send: (datagram) => link.sendLater(datagram),
      untilConfirmed: accepted.finish,
      keepaliveMs: CLIENT_KEEPALIVE_MS,
      ...(accepted.rttMs === null ? {} : { reliable: { initialRtoMs: initialRto(accepted.rttMs) } }),
      ...options.stream,
    });
    return {
      stream: new UdpSessionConnection(stream, link),
      channelBinding: new Uint8Array(accepted.session.channelBinding),
      channelBindingType: accepted.session.channelBindingType,
      certFingerprint: accepted.server.fingerprint,
    };
  } catch (err) {
    link.close();
    await link.closed;
    throw err;
  }
}
