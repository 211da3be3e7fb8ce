/**
 * AES-256-GCM as the datagram ciphers use it (peer `DATA`, session `RECORD`): a header sent in clear and
 * authenticated, the ciphertext and a 16-byte tag after it, all in one datagram. The nonce is the caller's
 * (each cipher derives it from its counter); `node:crypto` does the work, synchronously.
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";

/** Bytes of the GCM tag at the end of a sealed datagram. */
export const GCM_TAG_BYTES = 16;

/**
 * Seal a payload into a datagram: `header ‖ ciphertext ‖ tag`, the header authenticated as associated data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openAesGcm, sealAesGcm } from "./aes_gcm.ts";
 * const key = new Uint8Array(32), nonce = new Uint8Array(12), header = new Uint8Array([1, 2]);
 * const sealed = sealAesGcm(key, nonce, header, new TextEncoder().encode("hi"));
 * assert.equal(sealed.length, 2 + 2 + 16);
 * assert.equal(new TextDecoder().decode(openAesGcm(key, nonce, header, sealed.subarray(2))!), "hi");
 * ```
 *
 * @param key The 32-byte key.
 * @param nonce The 12-byte nonce (never twice with one key).
 * @param header The clear header, authenticated.
 * @param payload The payload.
 * @returns The datagram.
 */
export function sealAesGcm(
  key: Uint8Array,
  nonce: Uint8Array,
  header: Uint8Array,
  payload: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(header);
  const head = cipher.update(payload);
  const tail = cipher.final();
  const out = new Uint8Array(header.length + head.length + tail.length + GCM_TAG_BYTES);
  out.set(header);
  out.set(head, header.length);
  out.set(tail, header.length + head.length);
  out.set(cipher.getAuthTag(), out.length - GCM_TAG_BYTES);
  return out;
}

/**
 * Open what {@linkcode sealAesGcm} sealed: the payload, or `null` when the tag does not verify (nothing
 * decrypted is returned then) or the input is shorter than a tag.
 *
 * @param key The 32-byte key.
 * @param nonce The 12-byte nonce it was sealed with.
 * @param header The clear header it was sealed with.
 * @param sealed The ciphertext and its tag (the datagram after its header).
 * @returns The payload, or `null`.
 */
export function openAesGcm(
  key: Uint8Array,
  nonce: Uint8Array,
  header: Uint8Array,
  sealed: Uint8Array,
): Uint8Array<ArrayBuffer> | null {
  if (sealed.length < GCM_TAG_BYTES) return null;
  try {
    const body = sealed.length - GCM_TAG_BYTES;
    const decipher = createDecipheriv("aes-256-gcm", key, nonce);
    decipher.setAAD(header);
    decipher.setAuthTag(sealed.subarray(body));
    const head = decipher.update(sealed.subarray(0, body));
    // final() throws when the tag does not verify: nothing decrypted is used before that.
    const tail = decipher.final();
    const payload = new Uint8Array(head.length + tail.length);
    payload.set(head);
    payload.set(tail, head.length);
    return payload;
  } catch {
    return null;
  }
}
