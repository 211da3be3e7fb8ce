/**
 * OpenSSH-style key fingerprints: `SHA256:` followed by the unpadded base64
 * SHA-256 of the DER encoding.
 *
 * @module
 */

import { sha256 } from "./sha256.ts";

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/**
 * Fingerprint DER bytes (a certificate or a SubjectPublicKeyInfo).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprint } from "./fingerprint.ts";
 * const fp = await fingerprint(new Uint8Array([1]));
 * assert(fp.startsWith("SHA256:") && fp.length === 50);
 * ```
 *
 * @param der The DER bytes.
 * @returns `SHA256:<base64, no padding>`.
 */
export function fingerprint(der: Uint8Array<ArrayBuffer>): Promise<string> {
  return Promise.resolve(`SHA256:${sha256(der).toBase64({ omitPadding: true })}`);
}

/**
 * Tell whether a string is a well-formed fingerprint.
 *
 * @param text Candidate text.
 * @returns Whether it has the `SHA256:` + 43 base64 characters form.
 */
export function isFingerprint(text: string): boolean {
  return FINGERPRINT.test(text);
}
