/**
 * Strict base64 (RFC 4648, standard alphabet, padded): refuses whitespace,
 * missing padding and non-zero trailing bits, so one value has one encoding.
 *
 * @module
 */

/**
 * Encode bytes as padded standard base64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeBase64 } from "./base64.ts";
 * assert(encodeBase64(new Uint8Array([110, 44, 44])) === "biws");
 * ```
 *
 * @param bytes The bytes.
 * @returns The base64 text.
 */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/**
 * Decode strict base64, or return `null` when the text is not canonical base64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBase64 } from "./base64.ts";
 * assert(decodeBase64("biws")?.length === 3);
 * assert(decodeBase64("biw") === null);
 * ```
 *
 * @param text The base64 text.
 * @returns The bytes, or `null`.
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length % 4 !== 0) return null;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    // "strict" refuses missing padding and non-zero trailing bits, but skips ASCII white space ...
    bytes = Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return null;
  }
  // ... which the length then gives away: every character must have counted.
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return bytes.length === (text.length / 4) * 3 - padding ? bytes : null;
}
