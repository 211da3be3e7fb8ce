/**
 * Safety numbers: 60 digits two users compare out of band to make sure each
 * holds the other's real identity key (in the manner of Signal's).
 *
 * @module
 */

const encoder = new TextEncoder();

/** One side of a conversation. */
export interface SafetyNumberSide {
  /** The user key; lower-cased before use. */
  user: string;
  /** The raw identity public key. */
  key: Uint8Array;
}

/**
 * Compute the safety number of two users' identity keys. Per side,
 * SHA-256(UTF-8 `"authchat-safety/1\0" + user + "\0"` ‖ key) gives 30 bytes
 * read as six 5-byte big-endian integers, each mod 100000 as 5 digits; the
 * two 30-digit strings are sorted, joined and written as 12 groups of 5.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { safetyNumber } from "./safety_number.ts";
 * const alice = { user: "alice", key: new Uint8Array(32).fill(1) };
 * const bob = { user: "bob", key: new Uint8Array(32).fill(2) };
 * const n = await safetyNumber(alice, bob);
 * assert(n === await safetyNumber(bob, alice));
 * assert(/^\d{5}( \d{5}){11}$/.test(n));
 * ```
 *
 * @param a One user and key.
 * @param b The other user and key.
 * @returns The same text whichever side is `a`.
 */
export async function safetyNumber(a: SafetyNumberSide, b: SafetyNumberSide): Promise<string> {
  const digits = [await sideDigits(a), await sideDigits(b)].sort().join("");
  return digits.match(/\d{5}/g)!.join(" ");
}

async function sideDigits(side: SafetyNumberSide): Promise<string> {
  const label = encoder.encode(`authchat-safety/1\0${side.user.toLowerCase()}\0`);
  const input = new Uint8Array(label.length + side.key.length);
  input.set(label);
  input.set(side.key, label.length);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    // 5 bytes = 40 bits, exact in a double.
    let n = 0;
    for (let j = i; j < i + 5; j++) n = n * 256 + hash[j]!;
    out += String(n % 100000).padStart(5, "0");
  }
  return out;
}
