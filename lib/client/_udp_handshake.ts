/**
 * The client's half of opening a UDP session, up to a verified ACCEPT (docs/PROTOCOL.md 20.1, 20.3,
 * 20.5): the 1200-byte INIT, resent with backoff until the server answers; a RETRY made for this INIT
 * (its echo) brings a cookie, and a proof of work when the server is under load; the INIT goes again with
 * them; the ACCEPT's fragments are gathered and its signature checked. What it returns still has to be
 * trusted by the caller before anything else is sent.
 *
 * @module
 */

import { decodeRetry, encodeInit, RETRY_TYPE } from "../codec/udp_init.ts";
import { ACCEPT_TYPE } from "../codec/udp_session_datagram.ts";
import { DATAGRAM_VERSION, MAGIC } from "../codec/datagram.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { ClientHandshake } from "../crypto/udp_client_handshake.ts";
import type { AcceptDropReason, AcceptResult } from "../crypto/udp_client_handshake.ts";
import { PuzzleTooHardError, solvePuzzle } from "../crypto/udp_puzzle.ts";
import type { PuzzleProgress } from "../crypto/udp_puzzle.ts";
import type { RecordProtectionOptions } from "../crypto/udp_record_protection.ts";
import { ConnectError, connectErrorFrom } from "./connect_error.ts";
import type { Endpoint } from "./endpoint.ts";

/** A RETRY beyond this many for one attempt is ignored (PROTOCOL 20.1: at most 3). */
export const MAX_RETRIES = 3;
/** The longest pause between two sends of the same INIT. */
const MAX_RETRANSMIT_MS = 2000;
/**
 * The shortest first pause before an INIT that carries a cookie is sent again. Its first pause is four
 * round trips of the INIT that brought the cookie (the ACCEPT costs the server a signature more than the
 * RETRY did), within this and the configured first pause: a server losing datagrams to a flood then costs
 * a login tens of milliseconds, not the configured pause, and a resent INIT costs the server no new work
 * (the same ACCEPT goes again, within its amplification bound).
 */
export const MIN_RETRANSMIT_MS = 25;

/** What the handshake sends and receives through. */
export interface HandshakeLink {
  /** Send one datagram to the server. */
  send(datagram: Uint8Array): Promise<void>;
  /** The next datagram from the server, or `null` after `timeoutMs`. */
  next(timeoutMs: number): Promise<Uint8Array | null>;
}

/** How the handshake runs. */
export interface HandshakeSettings {
  /** The server, for messages. */
  endpoint: Endpoint;
  /** Longest wait for an answer from the server, in ms (the time spent on a proof of work is not counted). */
  timeoutMs: number;
  /** The first pause before an INIT is sent again (shorter for one with a cookie, see MIN_RETRANSMIT_MS); it doubles up to 2 s. */
  retransmitMs: number;
  /** Highest proof-of-work difficulty accepted. */
  puzzleCap: number;
  /** Told once a second while a proof of work takes over a second. */
  onPuzzleProgress?: (progress: PuzzleProgress) => void;
  /** The clock of the proof of work's progress, in ms (tests; default `performance.now`). */
  puzzleClock?: () => number;
  /** Record layer options (tests). */
  records?: RecordProtectionOptions;
}

/** A verified ACCEPT, and the round trip of the INIT it answered. */
export type Accepted = Extract<AcceptResult, { kind: "accepted" }> & {
  /** From the INIT to its ACCEPT, ms, when that INIT was sent once (else `null`: which send it answered is unknown). */
  rttMs: number | null;
};

/** What the handshake saw and did, for tests and diagnostics. */
export interface HandshakeCounts {
  /** INITs sent, first tries and repeats. */
  initsSent: number;
  /** RETRYs followed. */
  retries: number;
  /** Datagrams ignored: RETRYs for another INIT or beyond the limit, malformed ones, strays. */
  ignored: number;
  /** The highest proof-of-work difficulty a followed RETRY asked (absent: none followed yet). */
  difficulty?: number;
  /** Time spent on proofs of work, ms (absent: none yet). */
  powMs?: number;
}

function kindOf(datagram: Uint8Array): number | null {
  return datagram.length >= 3 && datagram[0] === MAGIC && datagram[1] === DATAGRAM_VERSION
    ? datagram[2]!
    : null;
}

/**
 * Run the handshake to a verified ACCEPT.
 *
 * @param link Sends to the server; the next datagram from it.
 * @param settings Timeouts, the puzzle cap, the progress callback.
 * @param counts Filled in as it goes.
 * @returns The accepted handshake (its FINISH not sent yet).
 * @throws {ConnectError} `timeout` when the server does not answer in time, `pow_refused` when it asks for
 *   more work than the cap, `unreachable` when there is no route to it.
 */
export async function udpHandshake(
  link: HandshakeLink,
  settings: HandshakeSettings,
  counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 },
): Promise<Accepted> {
  const handshake = await ClientHandshake.start(settings.records ? { records: settings.records } : {});
  const { clientRandom, clientShare } = handshake.init;
  let init = encodeInit({ clientRandom, clientShare });
  let cookie: Uint8Array | null = null;
  let firstPause = settings.retransmitMs;
  /** Why the last ACCEPT that did not verify was refused: told if no other comes. */
  let refused: AcceptDropReason | null = null;
  for (;;) {
    // Each (re)start waits for an answer anew: the proof of work before it is not the server's silence.
    let pause = firstPause;
    const deadline = performance.now() + settings.timeoutMs;
    let nextSend = 0;
    let restart = false;
    /** When this form of the INIT was first sent, and how often. */
    let firstSent = 0;
    let sends = 0;
    while (!restart) {
      const now = performance.now();
      if (now >= deadline) throw noAnswer(settings, refused);
      if (now >= nextSend) {
        if (sends++ === 0) firstSent = now;
        counts.initsSent++;
        await link.send(init).catch((err) => {
          // No route is worth saying at once; any other failure to send is one more lost datagram.
          const failed = connectErrorFrom(err, settings.endpoint);
          if (failed?.failure === "unreachable") throw failed;
        });
        nextSend = now + pause;
        pause = Math.min(pause * 2, MAX_RETRANSMIT_MS);
      }
      const datagram = await link.next(Math.min(nextSend, deadline) - performance.now());
      if (datagram === null) continue;
      const kind = kindOf(datagram);
      if (kind === ACCEPT_TYPE) {
        const rttMs = sends === 1 ? performance.now() - firstSent : null;
        const result = await handshake.receiveAccept(datagram);
        if (result.kind === "accepted") return { ...result, rttMs };
        if (result.kind === "dropped") {
          counts.ignored++;
          if (result.reason !== "malformed" && result.reason !== "already-accepted") refused = result.reason;
        }
        continue;
      }
      if (kind !== RETRY_TYPE) {
        counts.ignored++;
        continue;
      }
      let retry;
      try {
        retry = decodeRetry(datagram);
      } catch {
        counts.ignored++;
        continue;
      }
      // Made for another INIT (or forged by someone who did not see this one), a copy of the RETRY already
      // followed, or one too many: not followed, so nobody but the server this INIT reached sets the work.
      if (
        !constantTimeEqual(retry.echo, clientRandom) ||
        (cookie !== null && constantTimeEqual(retry.cookie, cookie)) ||
        counts.retries >= MAX_RETRIES
      ) {
        counts.ignored++;
        continue;
      }
      if (sends === 1) {
        const rtt = performance.now() - firstSent;
        firstPause = Math.min(settings.retransmitMs, Math.max(MIN_RETRANSMIT_MS, Math.ceil(4 * rtt)));
      }
      counts.retries++;
      counts.difficulty = Math.max(counts.difficulty ?? 0, retry.difficulty);
      let powNonce: Uint8Array;
      const powStarted = performance.now();
      try {
        powNonce = await solvePuzzle(retry.cookie, retry.difficulty, {
          cap: settings.puzzleCap,
          ...(settings.onPuzzleProgress ? { onProgress: settings.onPuzzleProgress } : {}),
          ...(settings.puzzleClock ? { now: settings.puzzleClock } : {}),
        });
        counts.powMs = (counts.powMs ?? 0) + performance.now() - powStarted;
      } catch (err) {
        if (err instanceof PuzzleTooHardError) {
          throw new ConnectError("pow_refused", settings.endpoint, err.message, { cause: err });
        }
        throw err;
      }
      cookie = retry.cookie;
      init = encodeInit({ clientRandom, clientShare, cookie, powNonce });
      restart = true;
    }
  }
}

function noAnswer(settings: HandshakeSettings, refused: AcceptDropReason | null): ConnectError {
  const within = `within ${settings.timeoutMs / 1000} s (timed out)`;
  let message: string;
  if (refused === "expired-credential") {
    message =
      `no handshake over UDP ${within}: the server answered, but the credential it signs handshakes ` +
      "with is out of date by this machine's clock (PROTOCOL 20.5): check this machine's clock, and the server's";
  } else if (refused !== null) {
    message =
      `no handshake over UDP ${within}: the server's ACCEPT did not verify (${refused}): it is not an ` +
      "authchat server, or something on the way alters its datagrams";
  } else {
    message = `no answer over UDP ${within}: check --host and --port, that the server serves UDP sessions ` +
      "(udp: true), and that no firewall drops UDP";
  }
  return new ConnectError("timeout", settings.endpoint, message, {
    cause: new Deno.errors.TimedOut("No answer over UDP"),
  });
}
