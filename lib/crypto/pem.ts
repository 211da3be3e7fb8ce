/**
 * PEM armour (RFC 7468) for DER bytes.
 *
 * @module
 */

/**
 * Wrap DER bytes in PEM armour.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePem, encodePem } from "./pem.ts";
 * const pem = encodePem("PUBLIC KEY", new Uint8Array([1, 2, 3]));
 * assert(decodePem(pem, "PUBLIC KEY")[2] === 3);
 * ```
 *
 * @param label The label (`CERTIFICATE`, `PRIVATE KEY`, `PUBLIC KEY`).
 * @param der The bytes.
 * @returns The PEM text, ending in a newline.
 */
export function encodePem(label: string, der: Uint8Array<ArrayBuffer>): string {
  const body = der.toBase64().replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/**
 * Read the first PEM block with the given label.
 *
 * @param text PEM text.
 * @param label The expected label.
 * @returns The DER bytes.
 * @throws {TypeError} When no such block exists or its body is not base64.
 */
export function decodePem(text: string, label: string): Uint8Array<ArrayBuffer> {
  const begin = `-----BEGIN ${label}-----`;
  const start = text.indexOf(begin);
  const end = text.indexOf(`-----END ${label}-----`, start);
  if (start < 0 || end < 0) throw new TypeError(`No PEM block: expected ${label}`);
  const body = text.slice(start + begin.length, end).replace(/\s+/g, "");
  try {
    return Uint8Array.fromBase64(body);
  } catch {
    throw new TypeError(`Invalid PEM block: ${label} body is not base64`);
  }
}
