/**
 * SCRAM-SHA-256 verifiers in PostgreSQL's `pg_authid.rolpassword` format:
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).
 * A verifier lets the server check a proof but cannot be replayed as one.
 *
 * @module
 */

import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { constantTimeEqual } from "./constant_time.ts";
import { deriveKeys, saltedPassword } from "./scram_math.ts";

/** Fewest PBKDF2 iterations accepted anywhere (RFC 7677 §4). */
export const MIN_ITERATIONS = 4096;
/** Most PBKDF2 iterations a client will compute. */
export const MAX_ITERATIONS = 10_000_000;
/** Default iteration count for new verifiers (OWASP 2023 for PBKDF2-HMAC-SHA256). */
export const DEFAULT_ITERATIONS = 600_000;
/** Salt length of new verifiers (PostgreSQL's too). */
export const SALT_BYTES = 16;

/** What the server stores for one account. */
export interface ScramVerifier {
  /** PBKDF2 iteration count. */
  iterations: number;
  /** Salt. */
  salt: Uint8Array<ArrayBuffer>;
  /** H(ClientKey). */
  storedKey: Uint8Array<ArrayBuffer>;
  /** HMAC(SaltedPassword, "Server Key"). */
  serverKey: Uint8Array<ArrayBuffer>;
}

/**
 * Compute a verifier for a password.
 *
 * @param password The SASLprepped password.
 * @param options Iteration count and, for tests, a fixed salt.
 * @returns The verifier.
 * @throws {RangeError} When the iteration count is out of bounds.
 */
export async function createVerifier(
  password: string,
  options: { iterations: number; salt?: Uint8Array<ArrayBuffer> },
): Promise<ScramVerifier> {
  checkIterations(options.iterations);
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const keys = await deriveKeys(await saltedPassword(password, { salt, iterations: options.iterations }));
  return { iterations: options.iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
}

/**
 * Tell whether a password is the one a verifier was made from: it derives StoredKey with the verifier's
 * salt and iteration count (the full PBKDF2 cost) and compares in constant time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createVerifier, verifierMatches } from "./scram_verifier.ts";
 * const verifier = await createVerifier("pencil", { iterations: 4096 });
 * assert(await verifierMatches("pencil", verifier) && !await verifierMatches("pen", verifier));
 * ```
 *
 * @param password The SASLprepped password.
 * @param verifier The verifier.
 * @returns Whether it matches.
 */
export async function verifierMatches(password: string, verifier: ScramVerifier): Promise<boolean> {
  const salted = await saltedPassword(password, { salt: verifier.salt, iterations: verifier.iterations });
  const keys = await deriveKeys(salted);
  salted.fill(0);
  return constantTimeEqual(keys.storedKey, verifier.storedKey);
}

/**
 * Check an iteration count against {@linkcode MIN_ITERATIONS} and {@linkcode MAX_ITERATIONS}.
 *
 * @param iterations The count.
 * @throws {RangeError} When out of bounds.
 */
export function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new RangeError(
      `Iteration count out of range: ${iterations} is not within ${MIN_ITERATIONS}..${MAX_ITERATIONS}`,
    );
  }
}

/**
 * Format a verifier as PostgreSQL does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatVerifier } from "./scram_verifier.ts";
 * const text = formatVerifier({
 *   iterations: 4096,
 *   salt: new Uint8Array(16),
 *   storedKey: new Uint8Array(32),
 *   serverKey: new Uint8Array(32),
 * });
 * assert(text.startsWith("SCRAM-SHA-256$4096:AAAA"));
 * ```
 *
 * @param verifier The verifier.
 * @returns The string.
 */
export function formatVerifier(verifier: ScramVerifier): string {
  return `SCRAM-SHA-256$${verifier.iterations}:${encodeBase64(verifier.salt)}$` +
    `${encodeBase64(verifier.storedKey)}:${encodeBase64(verifier.serverKey)}`;
}

const VERIFIER = /^SCRAM-SHA-256\$([0-9]{1,10}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

/**
 * Parse a PostgreSQL-format verifier.
 *
 * @param text The string.
 * @returns The verifier.
 * @throws {TypeError} When the text is not a SCRAM-SHA-256 verifier.
 * @throws {RangeError} When its iteration count is out of bounds.
 */
export function parseVerifier(text: string): ScramVerifier {
  const m = VERIFIER.exec(text);
  if (!m) {
    throw new TypeError(
      "Not a SCRAM-SHA-256 verifier: expected SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>",
    );
  }
  const iterations = Number(m[1]);
  checkIterations(iterations);
  const salt = decodeBase64(m[2]!);
  const storedKey = decodeBase64(m[3]!);
  const serverKey = decodeBase64(m[4]!);
  if (salt === null || salt.length === 0) throw new TypeError("Invalid verifier salt: not base64");
  if (storedKey === null || storedKey.length !== 32) {
    throw new TypeError("Invalid verifier StoredKey: not 32 bytes of base64");
  }
  if (serverKey === null || serverKey.length !== 32) {
    throw new TypeError("Invalid verifier ServerKey: not 32 bytes of base64");
  }
  return { iterations, salt, storedKey, serverKey };
}
