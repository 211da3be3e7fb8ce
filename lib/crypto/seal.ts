/**
 * Sealing a secret to the server: a fresh AES-256-GCM key encrypts the secret,
 * RSA-OAEP (SHA-256) wraps that key for the server's sealing key, and the
 * associated data binds the ciphertext to one operation of one session.
 *
 * @module
 */

import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import type { Sealed } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";

const OAEP = { name: "RSA-OAEP", hash: "SHA-256" } as const;
const encoder = new TextEncoder();

/**
 * The associated data of a sealed secret: what it may be used for, by whom, in which session.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sealContext } from "./seal.ts";
 * assert(sealContext("REGISTER", { user: "alice", nonce: "n1" }).length > 0);
 * ```
 *
 * @param op The command carrying the secret (`REGISTER`, `PASSWD`).
 * @param binding The user field of the message and the session's seal nonce.
 * @returns The associated data bytes.
 */
export function sealContext(op: string, binding: { user: string; nonce: string }): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify(["authchat-seal/1", op, binding.user, binding.nonce]));
}

/**
 * Import a SubjectPublicKeyInfo as an RSA-OAEP sealing key.
 *
 * @param spki DER bytes.
 * @returns The key.
 */
export function importSealPublicKey(spki: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("spki", spki, OAEP, true, ["encrypt"]);
}

/**
 * Import a PKCS#8 RSA private key for opening sealed secrets.
 *
 * @param pkcs8 DER bytes.
 * @returns The key.
 */
export function importSealPrivateKey(pkcs8: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", pkcs8, OAEP, false, ["decrypt"]);
}

/**
 * Seal a secret.
 *
 * @param publicKey The server's RSA-OAEP key.
 * @param secret The plaintext.
 * @param context Associated data from {@linkcode sealContext}.
 * @returns The sealed form carried in messages.
 */
export async function seal(
  publicKey: CryptoKey,
  secret: Uint8Array<ArrayBuffer>,
  context: Uint8Array<ArrayBuffer>,
): Promise<Sealed> {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: context }, aes, secret),
  );
  const key = new Uint8Array(await crypto.subtle.encrypt(OAEP, publicKey, raw));
  raw.fill(0);
  return { key: encodeBase64(key), iv: encodeBase64(iv), ct: encodeBase64(ct) };
}

/**
 * Open a sealed secret. Every failure has the same code and message so the
 * error reveals nothing about which step failed.
 *
 * @param privateKey The server's RSA-OAEP private key.
 * @param sealed The sealed form.
 * @param context The associated data the server expects.
 * @returns The plaintext.
 * @throws {ProtocolError} `SEAL_INVALID`.
 */
export async function openSealed(
  privateKey: CryptoKey,
  sealed: Sealed,
  context: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = decodeBase64(sealed.key);
  const iv = decodeBase64(sealed.iv);
  const ct = decodeBase64(sealed.ct);
  try {
    if (key === null || iv === null || iv.length !== 12 || ct === null) throw new Error("malformed");
    const raw = new Uint8Array(await crypto.subtle.decrypt(OAEP, privateKey, key));
    if (raw.length !== 32) throw new Error("bad key length");
    const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
    raw.fill(0);
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: context }, aes, ct),
    );
  } catch {
    throw new ProtocolError(
      "SEAL_INVALID",
      "Sealed secret could not be opened: wrong key, session or tampered data",
    );
  }
}
