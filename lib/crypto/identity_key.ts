/**
 * A user's long-term Ed25519 identity key, which signs the peer handshakes.
 * The public half travels as its 32 raw bytes; the private half as PKCS#8
 * (only ever inside a password-sealed key backup).
 *
 * @module
 */

import { fingerprint } from "./fingerprint.ts";

const ED25519 = { name: "Ed25519" } as const;
/** Bytes of a raw Ed25519 public key. */
export const IDENTITY_KEY_BYTES = 32;
/** Bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** An identity key pair. */
export interface Identity {
  /** Signing key; extractable so a new key backup can be sealed after a password change. */
  privateKey: CryptoKey;
  /** The 32 raw public key bytes. */
  publicKey: Uint8Array<ArrayBuffer>;
}

/**
 * Generate a new identity key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity } from "./identity_key.ts";
 * const id = await generateIdentity();
 * assert(id.publicKey.length === 32);
 * ```
 *
 * @returns The key pair.
 */
export async function generateIdentity(): Promise<Identity> {
  const pair = await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

/**
 * Export the private key of an identity as PKCS#8, for sealing into a key backup.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportIdentityPrivate, generateIdentity } from "./identity_key.ts";
 * const pkcs8 = await exportIdentityPrivate(await generateIdentity());
 * assert(pkcs8.length === 48);
 * ```
 *
 * @param id The identity.
 * @returns PKCS#8 DER bytes.
 * @throws {DOMException} When the private key is not extractable.
 */
export async function exportIdentityPrivate(id: Identity): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", id.privateKey));
}

/**
 * Rebuild an identity from its PKCS#8 private key and raw public key, making
 * sure the two belong together by signing and verifying a random probe.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportIdentityPrivate, generateIdentity, importIdentity } from "./identity_key.ts";
 * const id = await generateIdentity();
 * const again = await importIdentity(await exportIdentityPrivate(id), id.publicKey);
 * assert(again.publicKey.length === 32);
 * ```
 *
 * @param pkcs8 PKCS#8 DER bytes of an Ed25519 private key.
 * @param publicRaw The 32 raw public key bytes.
 * @returns The identity (private key extractable, public key copied).
 * @throws {TypeError} When either key is malformed or they do not form a pair.
 */
export async function importIdentity(
  pkcs8: Uint8Array<ArrayBuffer>,
  publicRaw: Uint8Array<ArrayBuffer>,
): Promise<Identity> {
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, true, ["sign"]);
  } catch {
    throw new TypeError("Invalid identity private key: not an Ed25519 PKCS#8 key");
  }
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = new Uint8Array(await crypto.subtle.sign(ED25519, privateKey, probe));
  if (!await verifyIdentitySignature(publicRaw, sig, probe)) {
    throw new TypeError("Invalid identity: the private key does not match the public key");
  }
  return { privateKey, publicKey: new Uint8Array(publicRaw) };
}

/**
 * Sign bytes with an identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, signWith } from "./identity_key.ts";
 * const sig = await signWith(await generateIdentity(), new Uint8Array([1, 2, 3]));
 * assert(sig.length === 64);
 * ```
 *
 * @param id The identity.
 * @param bytes What to sign.
 * @returns The 64-byte signature.
 */
export async function signWith(
  id: Identity,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.sign(ED25519, id.privateKey, bytes));
}

/**
 * Verify an Ed25519 signature by a raw public key. Never throws: a public key
 * or signature of the wrong size, or a key that is not a curve point, is
 * simply a failed verification.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, signWith, verifyIdentitySignature } from "./identity_key.ts";
 * const id = await generateIdentity();
 * const msg = new Uint8Array([1, 2, 3]);
 * assert(await verifyIdentitySignature(id.publicKey, await signWith(id, msg), msg));
 * assert(!await verifyIdentitySignature(id.publicKey, new Uint8Array(64), msg));
 * ```
 *
 * @param publicRaw The 32 raw public key bytes.
 * @param sig The signature.
 * @param bytes The signed bytes.
 * @returns Whether the signature is valid.
 */
export async function verifyIdentitySignature(
  publicRaw: Uint8Array<ArrayBuffer>,
  sig: Uint8Array<ArrayBuffer>,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  if (publicRaw.length !== IDENTITY_KEY_BYTES || sig.length !== SIGNATURE_BYTES) return false;
  try {
    const key = await crypto.subtle.importKey("raw", publicRaw, ED25519, false, ["verify"]);
    return await crypto.subtle.verify(ED25519, key, sig, bytes);
  } catch {
    return false;
  }
}

/**
 * Fingerprint a raw identity public key, in the form shown to users.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, identityFingerprint } from "./identity_key.ts";
 * const fp = await identityFingerprint((await generateIdentity()).publicKey);
 * assert(fp.startsWith("SHA256:") && fp.length === 50);
 * ```
 *
 * @param publicRaw The 32 raw public key bytes.
 * @returns `SHA256:` and the unpadded base64 SHA-256 of the raw key.
 * @throws {TypeError} When the key is not 32 bytes.
 */
export async function identityFingerprint(publicRaw: Uint8Array<ArrayBuffer>): Promise<string> {
  if (publicRaw.length !== IDENTITY_KEY_BYTES) {
    throw new TypeError(`Invalid identity key: ${publicRaw.length} bytes, expected 32`);
  }
  return await fingerprint(publicRaw);
}
