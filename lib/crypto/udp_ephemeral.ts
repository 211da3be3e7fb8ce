/**
 * The ephemeral X25519 keys of a UDP session handshake (docs/PROTOCOL.md 20.5), on `node:crypto`,
 * synchronously: WebCrypto's X25519 is asynchronous (a key pair, its export, the peer's import and the
 * derivation each wait for a thread-pool round trip), and a handshake runs on the server's receive path
 * and delays the client's first datagram. The bytes are X25519's (RFC 7748) either way; the handshake
 * tests check the two sides against each other and the key schedule against WebCrypto's.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from "node:crypto";

/** Bytes of a raw X25519 public key (an INIT's or ACCEPT's share). */
export const SHARE_KEY_BYTES = 32;

/** The DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows it. */
const SPKI_PREFIX = Uint8Array.fromHex("302a300506032b656e032100");

/** One side's ephemeral key pair, for one handshake. */
export interface UdpEphemeral {
  /** Derives only; never leaves the process. */
  privateKey: KeyObject;
  /** The 32 raw public key bytes, sent as the share. */
  publicKey: Uint8Array<ArrayBuffer>;
}

/**
 * A fresh ephemeral X25519 key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateUdpEphemeral } from "./udp_ephemeral.ts";
 * assert(generateUdpEphemeral().publicKey.length === 32);
 * ```
 *
 * @returns The key pair.
 */
export function generateUdpEphemeral(): UdpEphemeral {
  const pair = generateKeyPairSync("x25519");
  const spki = pair.publicKey.export({ type: "spki", format: "der" });
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)) };
}

/**
 * X25519 of our private key and the peer's raw share.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateUdpEphemeral, udpSharedSecret } from "./udp_ephemeral.ts";
 * const a = generateUdpEphemeral(), b = generateUdpEphemeral();
 * assert(udpSharedSecret(a.privateKey, b.publicKey)!.toHex() === udpSharedSecret(b.privateKey, a.publicKey)!.toHex());
 * assert(udpSharedSecret(a.privateKey, new Uint8Array(32)) === null);
 * ```
 *
 * @param privateKey Our ephemeral private key.
 * @param peerShare The peer's 32 raw public key bytes.
 * @returns The 32-byte shared secret (the caller wipes it once used), or `null` for a share that is not 32
 *   bytes or is of low order (an all-zero secret). Never throws on the share's content.
 */
export function udpSharedSecret(
  privateKey: KeyObject,
  peerShare: Uint8Array,
): Uint8Array<ArrayBuffer> | null {
  if (peerShare.length !== SHARE_KEY_BYTES) return null;
  const spki = Buffer.alloc(SPKI_PREFIX.length + SHARE_KEY_BYTES);
  spki.set(SPKI_PREFIX);
  spki.set(peerShare, SPKI_PREFIX.length);
  let shared: Uint8Array<ArrayBuffer>;
  try {
    const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
    shared = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  } catch {
    // The derivation refuses a low-order share itself; the check below does not rely on it.
    return null;
  }
  // OR every byte rather than stop at the first non-zero one: no timing hint about the secret.
  if (shared.reduce((acc, b) => acc | b, 0) === 0) return null;
  return shared;
}
