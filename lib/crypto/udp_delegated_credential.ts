/**
 * Delegated credentials of UDP handshakes (docs/PROTOCOL.md 20.5; the idea of RFC 9345): the
 * certificate's key (ECDSA P-256 or RSA) signs, for three days at most, an Ed25519 key the server made at
 * start, and that key signs each handshake's transcript. In Deno an ECDSA P-256 signature costs about a
 * millisecond of CPU and its check as much, an Ed25519 one 40 µs and 80 µs: a server's handshake costs
 * that much less, and so does a flood of admitted `INIT`s. A client checks a credential once and keeps
 * the result (the credential's time is checked at each use).
 *
 * The credential: `valid_until:u32` (Unix seconds) ‖ `public_key[32]` (raw Ed25519) ‖ the certificate key's
 * signature over {@linkcode CREDENTIAL_CONTEXT}, `0x00`, SHA-256 of the certificate (DER), `valid_until`
 * and `public_key`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import {
  CONNECTION_ID_BYTES,
  MAX_ACCEPT_BODY,
  RANDOM_BYTES,
  SHARE_BYTES,
  type SignatureAlgorithm,
} from "../codec/udp_session_datagram.ts";
import {
  certificateKeyParams,
  type SignatureRefusal,
  signedMessage,
  signTranscript,
  type UdpSigningKey,
  verifyingKey,
  verifyServerSignature,
} from "./udp_server_signature.ts";

/** The certificate key's signature covers these ASCII bytes and a 0x00 first. */
export const CREDENTIAL_CONTEXT = "authchat-udp/1 delegated credential";
/** How long a credential the server makes is valid, in seconds (three days). */
export const CREDENTIAL_LIFETIME_S = 3 * 24 * 3600;
/** The server makes a new credential when the current one has less than this left, in seconds (two days). */
export const CREDENTIAL_RENEW_S = 2 * 24 * 3600;
/** The longest validity a client accepts from its own clock, in seconds (seven days, as RFC 9345). */
export const MAX_CREDENTIAL_S = 7 * 24 * 3600;
/**
 * How long after `valid_until` a client still accepts a credential, in seconds (a day): with the renewal
 * two days ahead, a client's clock may be three days fast, or four slow, before it refuses a server's.
 */
export const CREDENTIAL_SKEW_S = 24 * 3600;
/** Bytes before the signature in a credential: `valid_until` and the public key. */
export const CREDENTIAL_HEAD_BYTES = 4 + 32;
/** Bytes of an Ed25519 signature. */
export const ED25519_SIGNATURE_BYTES = 64;

/** Why a delegated ACCEPT was refused, beyond {@linkcode SignatureRefusal}. */
export type CredentialRefusal =
  /** The credential is malformed, or not signed by the certificate's key for this certificate. */
  | "bad-credential"
  /**
   * The credential's `valid_until` passed more than {@linkcode CREDENTIAL_SKEW_S} ago, or lies further
   * ahead than {@linkcode MAX_CREDENTIAL_S}.
   */
  | "expired-credential";

/** One credential and the key it vouches for. */
export interface Delegation {
  /** The credential's bytes, as the ACCEPT carries them. */
  credential: Uint8Array<ArrayBuffer>;
  /** Its Ed25519 private key (never leaves the process). */
  privateKey: KeyObject;
  /** Unix seconds. */
  validUntil: number;
}

const encoder = new TextEncoder();
/** The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows it. */
const ED25519_SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");

/** The bytes the certificate key signs: context, 0x00, SHA-256(certificate), valid_until, public key. */
function credentialMessage(certificate: Uint8Array, head: Uint8Array): Uint8Array<ArrayBuffer> {
  const context = encoder.encode(CREDENTIAL_CONTEXT);
  const certHash = createHash("sha256").update(certificate).digest();
  const out = new Uint8Array(context.length + 1 + certHash.length + head.length);
  out.set(context);
  out.set(certHash, context.length + 1);
  out.set(head, context.length + 1 + certHash.length);
  return out;
}

/**
 * The server's side: makes a credential with the certificate's key, renews it before it runs out, and
 * signs transcripts with the delegated Ed25519 key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { DelegatedSigner } from "./udp_delegated_credential.ts";
 * import { importUdpSigningKey } from "./udp_server_signature.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
 * const delegation = await signer.current(Date.now());
 * assert(signer.sign(delegation, new Uint8Array(32)).length === 64);
 * ```
 */
export class DelegatedSigner {
  /** The certificate's key, which signs credentials. */
  readonly key: UdpSigningKey;
  #current: Promise<Delegation> | null = null;
  #validUntil = 0;

  /**
   * @param key The certificate's signing key.
   */
  constructor(key: UdpSigningKey) {
    this.key = key;
  }

  /**
   * The credential to use now: the current one, or a new one when less than {@linkcode CREDENTIAL_RENEW_S}
   * is left of it (made once however many handshakes ask at the same time).
   *
   * @param nowMs Unix milliseconds.
   * @returns The delegation.
   */
  current(nowMs: number): Promise<Delegation> {
    const now = Math.floor(nowMs / 1000);
    const left = this.#validUntil - now;
    // More left than a credential is made for: the clock was stepped back since (clients would refuse it
    // once that exceeds MAX_CREDENTIAL_S), so make one from the clock as it is now.
    if (this.#current === null || left < CREDENTIAL_RENEW_S || left > CREDENTIAL_LIFETIME_S) {
      this.#validUntil = now + CREDENTIAL_LIFETIME_S;
      const made = this.#make(this.#validUntil);
      // A failure (the certificate key refusing to sign) is told to this caller and tried again next time.
      made.catch(() => {
        if (this.#current === made) this.#current = null;
      });
      this.#current = made;
    }
    return this.#current;
  }

  /**
   * Sign a transcript hash with the delegated key.
   *
   * @param delegation From {@linkcode DelegatedSigner.current}.
   * @param transcriptHash 32 bytes.
   * @returns The 64-byte Ed25519 signature over {@linkcode signedMessage} of the hash.
   */
  sign(delegation: Delegation, transcriptHash: Uint8Array): Uint8Array<ArrayBuffer> {
    return new Uint8Array(sign(null, signedMessage(transcriptHash), delegation.privateKey));
  }

  async #make(validUntil: number): Promise<Delegation> {
    const pair = generateKeyPairSync("ed25519");
    const spki = pair.publicKey.export({ type: "spki", format: "der" });
    const head = new Uint8Array(CREDENTIAL_HEAD_BYTES);
    new DataView(head.buffer).setUint32(0, validUntil);
    head.set(spki.subarray(ED25519_SPKI_PREFIX.length), 4);
    const signature = new Uint8Array(
      await crypto.subtle.sign(
        certificateKeyParams(this.key.algorithm).sign,
        this.key.privateKey,
        credentialMessage(this.key.certificate, head),
      ),
    );
    const credential = new Uint8Array(head.length + signature.length);
    credential.set(head);
    credential.set(signature, head.length);
    return { credential, privateKey: pair.privateKey, validUntil };
  }
}

/**
 * Whether an ACCEPT signed by a delegated key fits {@linkcode MAX_ACCEPT_BODY} with this certificate: its
 * body is 102 bytes longer than one the certificate's key signs (`cred_len`, `valid_until`, the key, an
 * Ed25519 signature rather than none of those), so a large certificate that fits signing directly may not.
 *
 * @param key The certificate's signing key.
 * @returns `true` when it fits.
 */
export async function delegatedAcceptFits(key: UdpSigningKey): Promise<boolean> {
  const certificateSignature = await signTranscript(key, new Uint8Array(32));
  const body = RANDOM_BYTES + SHARE_BYTES + CONNECTION_ID_BYTES + 1 + 2 + key.certificate.length + 2 +
    CREDENTIAL_HEAD_BYTES + certificateSignature.length + 2 + ED25519_SIGNATURE_BYTES;
  return body <= MAX_ACCEPT_BODY;
}

/** Credentials already checked: `certificate hash ‖ credential` to the key it vouches for. */
const MAX_CHECKED = 16;
const checked = new Map<string, KeyObject>();

/**
 * Check an ACCEPT's signature: the certificate key's own (`ecdsa-p256-sha256`, `rsa-pss-sha256`), or, for
 * `ed25519-delegated`, the credential (signed by the certificate's key for this certificate, valid now
 * give or take {@linkcode CREDENTIAL_SKEW_S}, and for at most {@linkcode MAX_CREDENTIAL_S} more) and the Ed25519 signature of the key it vouches for.
 * A credential's signature is checked once per process (its time at each use).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { DelegatedSigner, verifyAcceptSignature } from "./udp_delegated_credential.ts";
 * import { importUdpSigningKey } from "./udp_server_signature.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
 * const delegation = await signer.current(Date.now());
 * const transcriptHash = new Uint8Array(32);
 * const input = {
 *   certificate: signer.key.certificate, algorithm: "ed25519-delegated" as const,
 *   credential: delegation.credential, signature: signer.sign(delegation, transcriptHash), transcriptHash,
 * };
 * assert(await verifyAcceptSignature(input) === null);
 * assert(await verifyAcceptSignature({ ...input, now: (delegation.validUntil + 2 * 86_400) * 1000 }) === "expired-credential");
 * ```
 *
 * @param input The certificate (DER), the ACCEPT's algorithm, credential and signature, the transcript
 *   hash, and the clock (Unix ms, default `Date.now()`).
 * @returns `null` when it verifies, else why not. Never throws on bad input.
 */
export async function verifyAcceptSignature(input: {
  certificate: Uint8Array;
  algorithm: SignatureAlgorithm;
  credential?: Uint8Array;
  signature: Uint8Array<ArrayBuffer>;
  transcriptHash: Uint8Array;
  now?: number;
}): Promise<SignatureRefusal | CredentialRefusal | null> {
  const { algorithm, credential } = input;
  if (algorithm !== "ed25519-delegated") {
    if (credential !== undefined) return "bad-credential";
    return await verifyServerSignature({ ...input, algorithm });
  }
  if (credential === undefined || credential.length <= CREDENTIAL_HEAD_BYTES) return "bad-credential";
  const validUntil = new DataView(credential.buffer, credential.byteOffset, 4).getUint32(0);
  const now = Math.floor((input.now ?? Date.now()) / 1000);
  if (validUntil + CREDENTIAL_SKEW_S < now || validUntil - now > MAX_CREDENTIAL_S) {
    return "expired-credential";
  }
  const publicKey = await delegatedKey(input.certificate, credential);
  if (typeof publicKey === "string") return publicKey;
  if (input.signature.length !== ED25519_SIGNATURE_BYTES) return "bad-signature";
  try {
    return verify(null, signedMessage(input.transcriptHash), publicKey, input.signature)
      ? null
      : "bad-signature";
  } catch {
    return "bad-signature";
  }
}

/** The Ed25519 key a credential vouches for, once its signature by the certificate's key is checked. */
async function delegatedKey(
  certificate: Uint8Array,
  credential: Uint8Array,
): Promise<KeyObject | SignatureRefusal | CredentialRefusal> {
  const head = credential.subarray(0, CREDENTIAL_HEAD_BYTES);
  const message = credentialMessage(certificate, head);
  // The certificate's hash is in the message: the cache's key covers the certificate and the credential.
  const id = createHash("sha256").update(message).update(credential).digest("base64");
  const known = checked.get(id);
  if (known !== undefined) return known;
  let found;
  try {
    found = await verifyingKey(certificate);
  } catch {
    return "bad-certificate";
  }
  if (found === null) return "bad-certificate";
  let ok = false;
  try {
    ok = await crypto.subtle.verify(
      certificateKeyParams(found.algorithm).sign,
      found.key,
      new Uint8Array(credential.subarray(CREDENTIAL_HEAD_BYTES)),
      message,
    );
  } catch {
    ok = false;
  }
  if (!ok) return "bad-credential";
  let key: KeyObject;
  try {
    const spki = new Uint8Array(ED25519_SPKI_PREFIX.length + 32);
    spki.set(ED25519_SPKI_PREFIX);
    spki.set(head.subarray(4), ED25519_SPKI_PREFIX.length);
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch {
    return "bad-credential";
  }
  if (checked.size >= MAX_CHECKED) checked.delete(checked.keys().next().value!);
  checked.set(id, key);
  return key;
}
