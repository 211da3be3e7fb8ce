/**
 * The SCRAM functions of RFC 5802 §3: Hi (PBKDF2, on WebCrypto, which runs it
 * off the event loop), HMAC, H and the keys derived from a salted password.
 * HMAC-SHA-256 and SHA-256 run on `sha256.ts` (a login computes several on
 * each side); SHA-1 exists only so the RFC 5802 example can be checked, on
 * WebCrypto. The protocol offers SHA-256 alone.
 *
 * @module
 */

import { hmacSha256, sha256 } from "./sha256.ts";

/** Hash functions SCRAM is computed with. */
export type ScramHash = "SHA-256" | "SHA-1";

const encoder = new TextEncoder();

/** Byte length of a hash's output. */
export function hashLength(hash: ScramHash): number {
  return hash === "SHA-256" ? 32 : 20;
}

/**
 * Hi(): PBKDF2 with HMAC over `hash`.
 *
 * @param password The SASLprepped password.
 * @param options Salt, iteration count and hash.
 * @returns SaltedPassword.
 */
export async function saltedPassword(
  password: string,
  options: { salt: Uint8Array<ArrayBuffer>; iterations: number; hash?: ScramHash },
): Promise<Uint8Array<ArrayBuffer>> {
  const hash = options.hash ?? "SHA-256";
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash, salt: options.salt, iterations: options.iterations },
    key,
    hashLength(hash) * 8,
  );
  return new Uint8Array(bits);
}

/**
 * HMAC(key, data).
 *
 * @param key The key.
 * @param data Bytes or a UTF-8 string.
 * @param hash The hash (default SHA-256).
 * @returns The MAC.
 */
export async function hmac(
  key: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer> | string,
  hash: ScramHash = "SHA-256",
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  if (hash === "SHA-256") return await hmacSha256(key, bytes);
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes));
}

/**
 * H(data).
 *
 * @param data The bytes.
 * @param hash The hash (default SHA-256).
 * @returns The digest.
 */
export async function digest(
  data: Uint8Array<ArrayBuffer>,
  hash: ScramHash = "SHA-256",
): Promise<Uint8Array<ArrayBuffer>> {
  if (hash === "SHA-256") return sha256(data);
  return new Uint8Array(await crypto.subtle.digest(hash, data));
}

/**
 * Byte-wise XOR of two equal-length arrays.
 *
 * @param a First.
 * @param b Second.
 * @returns a XOR b.
 * @throws {RangeError} When lengths differ.
 */
export function xor(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  if (a.length !== b.length) throw new RangeError(`Length mismatch: ${a.length} and ${b.length} bytes`);
  return a.map((v, i) => v ^ b[i]!);
}

/** ClientKey, StoredKey and ServerKey of one salted password. */
export interface ScramKeys {
  /** HMAC(SaltedPassword, "Client Key"). */
  clientKey: Uint8Array<ArrayBuffer>;
  /** H(ClientKey). */
  storedKey: Uint8Array<ArrayBuffer>;
  /** HMAC(SaltedPassword, "Server Key"). */
  serverKey: Uint8Array<ArrayBuffer>;
}

/**
 * Derive the SCRAM keys from SaltedPassword.
 *
 * @param salted SaltedPassword.
 * @param hash The hash (default SHA-256).
 * @returns The keys.
 */
export async function deriveKeys(
  salted: Uint8Array<ArrayBuffer>,
  hash: ScramHash = "SHA-256",
): Promise<ScramKeys> {
  const clientKey = await hmac(salted, "Client Key", hash);
  return {
    clientKey,
    storedKey: await digest(clientKey, hash),
    serverKey: await hmac(salted, "Server Key", hash),
  };
}

/**
 * A key both ends of a completed SCRAM exchange hold and an eavesdropper does not: HMAC of the
 * AuthMessage under ClientKey (which the server recovers from the proof). It keys the UDP rendezvous.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scramSessionKey } from "./scram_math.ts";
 * const key = await scramSessionKey(new Uint8Array(32), "n=user,r=a,r=ab,s=c2FsdA==,i=4096,c=biws,r=ab");
 * assert(key.length === 32);
 * ```
 *
 * @param clientKey ClientKey of the exchange.
 * @param authMessage The exchange's AuthMessage.
 * @returns 32 bytes.
 */
export function scramSessionKey(
  clientKey: Uint8Array<ArrayBuffer>,
  authMessage: string,
): Promise<Uint8Array<ArrayBuffer>> {
  return hmac(clientKey, `authchat-session-key/1,${authMessage}`, "SHA-256");
}
