/**
 * The server's decision on one `INIT` from a source it has not validated (docs/PROTOCOL.md §20): drop it
 * (with a reason the `udp_stats` log counts), answer it with a `RETRY` (a cookie, and a difficulty under
 * load), or admit it to the key exchange. Sans-I/O and stateless: nothing is kept per source, so a flood of
 * `INIT`s from spoofed addresses allocates nothing that outlives the call.
 *
 * @module
 */

import { decodeInit, encodeRetry, type InitDatagram, UdpInitFormatError } from "../codec/udp_init.ts";
import { type SourceAddress, UdpCookies } from "../crypto/udp_cookie.ts";
import { proofBits } from "../crypto/udp_puzzle.ts";

/** Why a datagram from an unvalidated source was dropped: a closed list, each counted in `udp_stats`. */
export const ADMISSION_DROP_REASONS = [
  "malformed",
  "bad_version",
  "bad_cookie",
  "expired_cookie",
  "moved_cookie",
  "weak_pow",
  "amplification",
  "internal",
] as const;

/**
 * One of {@linkcode ADMISSION_DROP_REASONS}:
 * - `malformed`: not a well-formed `INIT` (wrong length or type, non-zero padding, …).
 * - `bad_version`: a well-formed `INIT` of a session version this server does not speak.
 * - `bad_cookie`: a cookie that is not one of ours (forged, wrong length, a future slot, other bytes).
 * - `expired_cookie`: a cookie older than the previous slot.
 * - `moved_cookie`: a cookie minted for this `INIT` but another source address or port.
 * - `weak_pow`: a genuine cookie whose `pow_nonce` does not meet the difficulty it was minted with.
 * - `amplification`: the answer would be larger than the datagram (never happens with a valid `INIT`).
 * - `internal`: the server failed (a bug); dropped rather than thrown out of the receive loop.
 */
export type AdmissionDropReason = typeof ADMISSION_DROP_REASONS[number];

/** Why a `RETRY` was sent. */
export type RetryCause = "no_cookie" | "difficulty_raised";

/** What to do with one datagram. */
export type AdmissionDecision =
  | { kind: "drop"; reason: AdmissionDropReason }
  | {
    kind: "retry";
    /** The `RETRY` to send back to the source: never longer than the datagram it answers. */
    bytes: Uint8Array<ArrayBuffer>;
    /** The difficulty it asks. */
    difficulty: number;
    /** Why it was sent. */
    cause: RetryCause;
  }
  | {
    kind: "admit";
    /** The validated `INIT`. */
    init: InitDatagram;
    /** The cookie's time slot (the caller may key a half-open session by source and `init.clientRandom`). */
    slot: number;
  };

/** What {@linkcode UdpAdmission} is built from. */
export interface UdpAdmissionOptions {
  /** The cookie minter and verifier. */
  cookies: UdpCookies;
  /** The difficulty to ask now (a `PuzzleDifficulty` the server feeds with its load). */
  difficulty: { current(): number };
}

/**
 * Decides, statelessly, what to do with datagrams from unvalidated sources.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRetry, encodeInit } from "../codec/udp_init.ts";
 * import { UdpCookies } from "../crypto/udp_cookie.ts";
 * import { UdpAdmission } from "./udp_admission.ts";
 * const admission = new UdpAdmission({
 *   cookies: new UdpCookies(new Uint8Array(32)),
 *   difficulty: { current: () => 0 },
 * });
 * const source = { hostname: "127.0.0.2", port: 5000 };
 * const fields = { clientRandom: new Uint8Array(32).fill(1), clientShare: new Uint8Array(32).fill(2) };
 * const first = await admission.decide(encodeInit(fields), source);
 * assert(first.kind === "retry");
 * const { cookie } = decodeRetry(first.bytes);
 * assert((await admission.decide(encodeInit({ ...fields, cookie }), source)).kind === "admit");
 * ```
 */
export class UdpAdmission {
  #cookies: UdpCookies;
  #difficulty: { current(): number };

  /**
   * Make the engine.
   *
   * @param options Cookies and difficulty.
   */
  constructor(options: UdpAdmissionOptions) {
    this.#cookies = options.cookies;
    this.#difficulty = options.difficulty;
  }

  /**
   * Decide what to do with one datagram from a source that has no session.
   *
   * @param datagram The bytes received.
   * @param source Where they came from.
   * @returns `drop` with a reason, `retry` with the bytes to send back, or `admit` with the `INIT`. Never
   *   throws and never rejects.
   */
  async decide(datagram: Uint8Array, source: SourceAddress): Promise<AdmissionDecision> {
    try {
      return await this.#decide(datagram, source);
    } catch {
      return { kind: "drop", reason: "internal" };
    }
  }

  async #decide(datagram: Uint8Array, source: SourceAddress): Promise<AdmissionDecision> {
    let init: InitDatagram;
    try {
      init = decodeInit(datagram);
    } catch (err) {
      if (!(err instanceof UdpInitFormatError)) throw err;
      return { kind: "drop", reason: err.code === "version" ? "bad_version" : "malformed" };
    }
    const now = this.#difficulty.current();
    if (init.cookie.length === 0) return await this.#retry(init, source, now, "no_cookie", datagram.length);
    const check = await this.#cookies.verify(init.cookie, source, init.bound);
    if (!check.ok) return { kind: "drop", reason: check.reason };
    const asked = Math.max(check.difficulty, now);
    const bits = asked === 0 ? 0 : proofBits(init.cookie, init.powNonce);
    if (bits < check.difficulty) return { kind: "drop", reason: "weak_pow" };
    // The load rose since this cookie was minted: ask for the work it calls for now, so cookies gathered
    // cheaply before a flood do not let it through.
    if (bits < now) return await this.#retry(init, source, now, "difficulty_raised", datagram.length);
    return { kind: "admit", init, slot: check.slot };
  }

  async #retry(
    init: InitDatagram,
    source: SourceAddress,
    difficulty: number,
    cause: RetryCause,
    received: number,
  ): Promise<AdmissionDecision> {
    const cookie = await this.#cookies.mint(source, init.bound, difficulty);
    const bytes = encodeRetry({ echo: init.clientRandom, cookie, difficulty });
    // An unvalidated source gets at most the bytes it sent: the one rule that makes us useless as an amplifier.
    if (bytes.length > received) return { kind: "drop", reason: "amplification" };
    return { kind: "retry", bytes, difficulty, cause };
  }
}
