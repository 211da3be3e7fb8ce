/**
 * The proof of work of UDP admission (docs/PROTOCOL.md §20.3), in the spirit of IKEv2 puzzles (RFC 8019):
 * find an 8-byte `pow_nonce` such that SHA-256(cookie ‖ pow_nonce) starts with at least `difficulty` zero
 * bits. The server checks a proof with one hash and no state; the client's solver refuses a difficulty above
 * its cap, so a forged `RETRY` cannot make it spin.
 *
 * @module
 */

import { sha256 } from "./sha256.ts";

/** Bytes of a `pow_nonce`. */
export const POW_NONCE_BYTES = 8;
/** The solver's default cap: 2^24 hashes expected, seconds on a phone. */
export const DEFAULT_PUZZLE_CAP = 24;
/** Hashes between two looks at the clock. */
const BATCH = 4096;
/** Longest stretch of work between two yields to the event loop. */
const YIELD_MS = 16;
/** How long a solver works before it reports progress, and then how often. */
const PROGRESS_MS = 1000;

/** A `RETRY` asked for more work than the client accepts. */
export class PuzzleTooHardError extends RangeError {
  /** The difficulty asked, in leading zero bits. */
  readonly difficulty: number;
  /** The client's cap. */
  readonly cap: number;

  /**
   * Make the error.
   *
   * @param difficulty The difficulty asked.
   * @param cap The cap it exceeds.
   */
  constructor(difficulty: number, cap: number) {
    super(
      `Proof of work refused: the server asked for ${difficulty} leading zero bits, above this client's cap of ${cap}`,
    );
    this.name = "PuzzleTooHardError";
    this.difficulty = difficulty;
    this.cap = cap;
  }
}

/** Progress of a solver that has worked for over a second. */
export interface PuzzleProgress {
  /** Hashes tried so far. */
  attempts: number;
  /** Hashes expected on average for this difficulty (2^difficulty). */
  expected: number;
  /** Milliseconds since the solver started. */
  elapsedMs: number;
}

/** Options of {@linkcode solvePuzzle}. */
export interface SolvePuzzleOptions {
  /** Highest difficulty accepted (default {@linkcode DEFAULT_PUZZLE_CAP}). */
  cap?: number;
  /** Called once a second after the first second of work. */
  onProgress?: (progress: PuzzleProgress) => void;
  /** Stops the search (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Milliseconds, for progress (default `performance.now`). */
  now?: () => number;
}

/**
 * Leading zero bits of a byte string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leadingZeroBits } from "./udp_puzzle.ts";
 * assert(leadingZeroBits(new Uint8Array([0, 0x10, 0xff])) === 11);
 * ```
 *
 * @param bytes The bytes.
 * @returns How many bits are zero before the first one bit (8 × length when all are zero).
 */
export function leadingZeroBits(bytes: Uint8Array): number {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/**
 * The leading zero bits of SHA-256(cookie ‖ powNonce): a proof meets difficulty `d` when this is ≥ `d`.
 * One hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { proofBits } from "./udp_puzzle.ts";
 * assert(proofBits(new Uint8Array(29), new Uint8Array(8)) >= 0);
 * ```
 *
 * @param cookie The cookie.
 * @param powNonce 8 bytes.
 * @returns 0..256.
 * @throws {RangeError} When `powNonce` is not 8 bytes.
 */
export function proofBits(cookie: Uint8Array, powNonce: Uint8Array): number {
  if (powNonce.length !== POW_NONCE_BYTES) {
    throw new RangeError(`pow_nonce must be ${POW_NONCE_BYTES} bytes: got ${powNonce.length}`);
  }
  const input = new Uint8Array(cookie.length + POW_NONCE_BYTES);
  input.set(cookie);
  input.set(powNonce, cookie.length);
  return leadingZeroBits(sha256(input));
}

/**
 * Find a `pow_nonce` for a cookie and difficulty. Works in batches of 4096 hashes, yielding to the event
 * loop after a batch once 16 ms have passed since the last yield; after a second of work, reports progress
 * once a second.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { proofBits, solvePuzzle } from "./udp_puzzle.ts";
 * const cookie = new Uint8Array(29).fill(3);
 * const nonce = await solvePuzzle(cookie, 8);
 * assert(proofBits(cookie, nonce) >= 8);
 * ```
 *
 * @param cookie The cookie from the `RETRY`.
 * @param difficulty Leading zero bits asked (0 gives the zero nonce at once).
 * @param options Cap, progress callback, abort signal, clock.
 * @returns The 8-byte nonce.
 * @throws {PuzzleTooHardError} When `difficulty` is above the cap (before any work).
 * @throws {RangeError} When `difficulty` or `cap` is not an integer in 0..256.
 */
export async function solvePuzzle(
  cookie: Uint8Array,
  difficulty: number,
  options: SolvePuzzleOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const cap = options.cap ?? DEFAULT_PUZZLE_CAP;
  for (const [what, value] of [["difficulty", difficulty], ["cap", cap]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 256) {
      throw new RangeError(`Invalid puzzle ${what}: ${value}`);
    }
  }
  if (difficulty > cap) throw new PuzzleTooHardError(difficulty, cap);
  const input = new Uint8Array(cookie.length + POW_NONCE_BYTES);
  input.set(cookie);
  const nonce = input.subarray(cookie.length);
  const view = new DataView(input.buffer, cookie.length, POW_NONCE_BYTES);
  if (difficulty === 0) return nonce.slice();
  const now = options.now ?? (() => performance.now());
  const started = now();
  let nextReport = started + PROGRESS_MS;
  let lastYield = started;
  // The high word counts batches of 2^32 as well, so a search of 2^64 nonces never repeats one.
  for (let attempts = 0;;) {
    options.signal?.throwIfAborted();
    for (let i = 0; i < BATCH; i++, attempts++) {
      view.setUint32(0, Math.floor(attempts / 2 ** 32));
      view.setUint32(4, attempts >>> 0);
      if (leadingZeroBits(sha256(input)) >= difficulty) return nonce.slice();
    }
    const at = now();
    if (at >= nextReport) {
      nextReport = at + PROGRESS_MS;
      options.onProgress?.({ attempts, expected: 2 ** difficulty, elapsedMs: at - started });
    }
    if (at - lastYield >= YIELD_MS) {
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      lastYield = now();
    }
  }
}
