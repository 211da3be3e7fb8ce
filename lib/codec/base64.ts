/**
 * Strict base64 (RFC 4648, standard alphabet, padded): refuses whitespace,
 * missing padding and non-zero trailing bits, so one value has one encoding.
 *
 * @module
 */

const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Encode bytes as padded standard base64.
 *
 * @example
 * ```ts
 * import { encodeBase64 } from "./base64.ts";
 * console.assert(encodeBase64(new Uint8Array([110, 44, 44])) === "biws");
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
 * import { decodeBase64 } from "./base64.ts";
 * console.assert(decodeBase64("biws")?.length === 3);
 * console.assert(decodeBase64("biw") === null);
 * ```
 *
 * @param text The base64 text.
 * @returns The bytes, or `null`.
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!STRICT.test(text)) return null;
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return null;
  }
}
