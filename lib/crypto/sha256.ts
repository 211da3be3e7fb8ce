/**
 * SHA-256 and HMAC-SHA-256 for the hot paths (every login, every fingerprint), on hash-wasm's SHA-256.
 *
 * WebCrypto is the default elsewhere, but in Deno each of its calls is an asynchronous operation costing
 * 20–50 µs, and a login needs several HMACs on each side; hash-wasm's WebAssembly SHA-256, instantiated
 * once, does the same work in 4–8 µs. The outputs are the standard ones (tests compare them with
 * WebCrypto and the RFC 4231 vectors).
 *
 * @module
 */

import { createHMAC, createSHA256 } from "hash-wasm";

// One instance, shared: every use below runs init → update → digest without yielding in between.
const hasher = await createSHA256();
const ready = Promise.resolve(hasher);
let calls = 0;

/**
 * How many SHA-256 and HMAC computations this module has made: tests use it to show that two code paths
 * (a known and an unknown user) do the same work.
 *
 * @returns The count so far.
 */
export function hashCalls(): number {
  return calls;
}

/**
 * SHA-256 of some bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256 } from "./sha256.ts";
 * const hex = sha256(new TextEncoder().encode("abc")).toHex();
 * assert(hex === "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * ```
 *
 * @param data The bytes.
 * @returns The 32-byte digest.
 */
export function sha256(data: Uint8Array): Uint8Array<ArrayBuffer> {
  calls++;
  hasher.init();
  hasher.update(data);
  return new Uint8Array(hasher.digest("binary"));
}

/**
 * HMAC-SHA-256 (RFC 2104).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hmacSha256 } from "./sha256.ts";
 * const mac = await hmacSha256(new TextEncoder().encode("key"), new TextEncoder().encode("The quick brown fox jumps over the lazy dog"));
 * assert(mac.toHex() === "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
 * ```
 *
 * @param key The key.
 * @param data The message.
 * @returns The 32-byte MAC.
 */
export async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  calls++;
  const mac = await createHMAC(ready, key);
  mac.init();
  mac.update(data);
  return new Uint8Array(mac.digest("binary"));
}
