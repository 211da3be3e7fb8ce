/**
 * Key schedule of a peer session: an X25519 exchange of ephemeral keys (the
 * handshake signs them with the identity keys), then HKDF-SHA-256 into one
 * AES-256-GCM key per direction and an 8-byte session id.
 *
 * @module
 */

import { constantTimeEqual } from "./constant_time.ts";

/** Bytes of a raw X25519 public key. */
export const EPHEMERAL_KEY_BYTES = 32;
/** Bytes of a session id. */
export const SESSION_ID_BYTES = 8;

const X25519 = { name: "X25519" } as const;
const encoder = new TextEncoder();

/** An ephemeral X25519 key pair, used for one handshake. */
export interface EphemeralKeyPair {
  /** Non-extractable; only derives. */
  privateKey: CryptoKey;
  /** The 32 raw public key bytes, sent in HS1 or HS2. */
  publicKey: Uint8Array<ArrayBuffer>;
}

/** What both peers know at the end of a handshake. */
export interface SessionKeyInput {
  /** Our ephemeral private key. */
  ephemeralPrivate: CryptoKey;
  /** The other side's ephemeral public key (must be `ephResp` for the initiator, `ephInit` for the responder). */
  peerEphemeral: Uint8Array<ArrayBuffer>;
  /** User key of the side that sent HS1. */
  initiator: string;
  /** User key of the side that sent HS2. */
  responder: string;
  /** The initiator's ephemeral public key. */
  ephInit: Uint8Array<ArrayBuffer>;
  /** The responder's ephemeral public key. */
  ephResp: Uint8Array<ArrayBuffer>;
  /** Which side we are. */
  role: "initiator" | "responder";
}

/**
 * The keys of one session, from one side's point of view. The AES keys are raw bytes because the
 * datagram cipher runs on `node:crypto` (see `datagram_cipher.ts`); they live as long as the session.
 */
export interface SessionKeys {
  /** 8 bytes, the same on both sides. */
  sessionId: Uint8Array<ArrayBuffer>;
  /** AES-256-GCM key, 32 bytes: our direction. */
  sendKey: Uint8Array<ArrayBuffer>;
  /** AES-256-GCM key, 32 bytes: the other direction. */
  receiveKey: Uint8Array<ArrayBuffer>;
}

/**
 * Generate an ephemeral X25519 key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateEphemeral } from "./peer_session.ts";
 * assert((await generateEphemeral()).publicKey.length === 32);
 * ```
 *
 * @returns The key pair.
 */
export async function generateEphemeral(): Promise<EphemeralKeyPair> {
  const pair = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

/**
 * Derive the session keys: shared = X25519(ours, theirs); HKDF-SHA-256 with
 * salt `ephInit ‖ ephResp` and info `"authchat-dm/2 " + label + "\0" +
 * initiator + "\0" + responder` for labels `i2r`, `r2i` (32-byte keys) and
 * `sid` (8 bytes). The `/2` is the direct-message format (messages carry a
 * sender instance and number): a client of format 1 derives other keys, so
 * the two never misread each other's messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deriveSessionKeys, generateEphemeral } from "./peer_session.ts";
 * const a = await generateEphemeral();
 * const b = await generateEphemeral();
 * const common = { initiator: "alice", responder: "bob", ephInit: a.publicKey, ephResp: b.publicKey };
 * const alice = await deriveSessionKeys({
 *   ...common, ephemeralPrivate: a.privateKey, peerEphemeral: b.publicKey, role: "initiator",
 * });
 * assert(alice.sessionId.length === 8);
 * ```
 *
 * @param input Our ephemeral key, both public ephemerals, both user keys and our role.
 * @returns Our send and receive keys and the session id.
 * @throws {TypeError} For keys of the wrong size, a peer ephemeral that is not
 *   the other side's one of `ephInit`/`ephResp`, a user key containing NUL, or
 *   a low-order peer key (all-zero shared secret).
 */
export async function deriveSessionKeys(input: SessionKeyInput): Promise<SessionKeys> {
  const { ephemeralPrivate, peerEphemeral, initiator, responder, ephInit, ephResp, role } = input;
  for (const key of [peerEphemeral, ephInit, ephResp]) {
    if (key.length !== EPHEMERAL_KEY_BYTES) {
      throw new TypeError(`Invalid ephemeral key: ${key.length} bytes, expected ${EPHEMERAL_KEY_BYTES}`);
    }
  }
  if (!constantTimeEqual(peerEphemeral, role === "initiator" ? ephResp : ephInit)) {
    throw new TypeError(`Invalid session input: peer ephemeral is not the ${role}'s counterpart`);
  }
  // NUL separates the names in the HKDF info, so it must not occur inside one.
  if (initiator.includes("\0") || responder.includes("\0")) {
    throw new TypeError("Invalid session input: user key contains NUL");
  }
  const shared = await x25519(ephemeralPrivate, peerEphemeral);
  let ikm: CryptoKey;
  try {
    ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  } finally {
    shared.fill(0);
  }
  const salt = new Uint8Array(EPHEMERAL_KEY_BYTES * 2);
  salt.set(ephInit);
  salt.set(ephResp, EPHEMERAL_KEY_BYTES);
  const expand = async (label: string, bytes: number): Promise<Uint8Array<ArrayBuffer>> => {
    const info = encoder.encode(`authchat-dm/2 ${label}\0${initiator}\0${responder}`);
    return new Uint8Array(
      await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, ikm, bytes * 8),
    );
  };
  const [i2r, r2i, sessionId] = await Promise.all([
    expand("i2r", 32),
    expand("r2i", 32),
    expand("sid", SESSION_ID_BYTES),
  ]);
  const [sendKey, receiveKey] = role === "initiator" ? [i2r, r2i] : [r2i, i2r];
  return { sessionId, sendKey, receiveKey };
}

/**
 * X25519 of our private key and a peer's raw public key, refusing a low-order peer key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateEphemeral, x25519 } from "./peer_session.ts";
 * const a = await generateEphemeral();
 * const b = await generateEphemeral();
 * assert((await x25519(a.privateKey, b.publicKey)).toHex() === (await x25519(b.privateKey, a.publicKey)).toHex());
 * ```
 *
 * @param privateKey Our X25519 private key.
 * @param peerRaw The peer's 32 raw public key bytes.
 * @returns The 32-byte shared secret (the caller wipes it once used).
 * @throws {TypeError} For a low-order peer key (all-zero shared secret).
 * @throws {DOMException} For a peer key WebCrypto refuses to import.
 */
export async function x25519(
  privateKey: CryptoKey,
  peerRaw: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const lowOrder = new TypeError(
    "Invalid peer ephemeral key: low-order point gives an all-zero shared secret",
  );
  let shared: Uint8Array<ArrayBuffer>;
  try {
    const peer = await crypto.subtle.importKey("raw", peerRaw, X25519, false, []);
    shared = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256),
    );
  } catch (err) {
    // Deno refuses the all-zero result itself; the check below does not rely on it.
    if (err instanceof DOMException && err.name === "OperationError") throw lowOrder;
    throw err;
  }
  // OR every byte rather than stop at the first non-zero one: no timing hint about the secret.
  if (shared.reduce((acc, b) => acc | b, 0) === 0) throw lowOrder;
  return shared;
}
