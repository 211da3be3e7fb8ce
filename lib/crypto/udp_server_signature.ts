/**
 * The server's signature in a UDP handshake (docs/PROTOCOL.md 20.5): made with
 * the key of the certificate TLS serves (ECDSA P-256 or RSA, as `authchat
 * keygen` makes them), over a context string and the transcript hash, and
 * checked by the client against the public key inside the certificate the
 * ACCEPT carries. The certificate is read with `node:crypto`'s
 * `X509Certificate`, not the X.509 library that mints it (see `certificate.ts`).
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import {
  type CertificateAlgorithm,
  CONNECTION_ID_BYTES,
  MAX_ACCEPT_BODY,
  RANDOM_BYTES,
  SHARE_BYTES,
} from "../codec/udp_session_datagram.ts";
import { decodePem } from "./pem.ts";

/** The signed message starts with these ASCII bytes and a 0x00, then the 32-byte transcript hash. */
export const SIGNATURE_CONTEXT = "authchat-udp/1 server signature";

/** Smallest RSA modulus accepted in a server certificate, in bits. */
export const MIN_RSA_BITS = 2048;

/** The server's signing identity for UDP sessions. */
export interface UdpSigningKey {
  /** The certificate, DER: sent in every ACCEPT. */
  certificate: Uint8Array<ArrayBuffer>;
  /** The algorithm its key signs with. */
  algorithm: CertificateAlgorithm;
  /** The certificate's private key, sign only. */
  privateKey: CryptoKey;
}

/** Why a server signature was refused. */
export type SignatureRefusal =
  /** The certificate does not parse, or its key is neither ECDSA P-256 nor RSA of at least 2048 bits. */
  | "bad-certificate"
  /** The ACCEPT names an algorithm other than the certificate key's. */
  | "algorithm-mismatch"
  /** The signature does not verify under the certificate's key. */
  | "bad-signature";

const encoder = new TextEncoder();

/**
 * WebCrypto's parameters for a certificate key's algorithm: to import it, and to sign or verify with it.
 *
 * @param algorithm The algorithm.
 * @returns Import and sign parameters.
 */
export function certificateKeyParams(algorithm: CertificateAlgorithm): {
  key: RsaHashedImportParams | EcKeyImportParams;
  sign: RsaPssParams | EcdsaParams;
} {
  return algorithm === "ecdsa-p256-sha256"
    ? { key: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } }
    : { key: { name: "RSA-PSS", hash: "SHA-256" }, sign: { name: "RSA-PSS", saltLength: 32 } };
}

/** The certificate's public key and the algorithm it signs with, or `null` for one not accepted. */
function certificateKey(
  der: Uint8Array,
): { algorithm: CertificateAlgorithm; spki: Uint8Array<ArrayBuffer> } | null {
  let key;
  try {
    key = new X509Certificate(der).publicKey;
  } catch {
    return null;
  }
  const spki = new Uint8Array(key.export({ type: "spki", format: "der" }));
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") {
    return { algorithm: "ecdsa-p256-sha256", spki };
  }
  if (key.asymmetricKeyType === "rsa" && (details?.modulusLength ?? 0) >= MIN_RSA_BITS) {
    return { algorithm: "rsa-pss-sha256", spki };
  }
  return null;
}

/**
 * The bytes a server signature covers: {@linkcode SIGNATURE_CONTEXT}, 0x00, the transcript hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signedMessage } from "./udp_server_signature.ts";
 * assert(signedMessage(new Uint8Array(32)).length === 31 + 1 + 32);
 * ```
 *
 * @param transcriptHash 32 bytes.
 * @returns The message.
 */
export function signedMessage(transcriptHash: Uint8Array): Uint8Array<ArrayBuffer> {
  const context = encoder.encode(SIGNATURE_CONTEXT);
  const out = new Uint8Array(context.length + 1 + transcriptHash.length);
  out.set(context);
  out.set(transcriptHash, context.length + 1);
  return out;
}

/**
 * Load the server's UDP signing key from the TLS certificate and key files' text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { importUdpSigningKey } from "./udp_server_signature.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
 * assert(key.algorithm === "ecdsa-p256-sha256");
 * ```
 *
 * @param certPem The certificate, PEM.
 * @param keyPem Its private key, PEM PKCS#8.
 * @returns The signing key.
 * @throws {TypeError} When the certificate's key is not ECDSA P-256 or RSA ≥ 2048 bits, the private key
 *   does not import or does not match the certificate, or the certificate and a signature do not fit an
 *   ACCEPT (PROTOCOL 20.5: a body of at most 3561 bytes), so that no handshake would ever be answered.
 */
export async function importUdpSigningKey(certPem: string, keyPem: string): Promise<UdpSigningKey> {
  const certificate = decodePem(certPem, "CERTIFICATE");
  const found = certificateKey(certificate);
  if (found === null) {
    throw new TypeError("Invalid certificate: its key is neither ECDSA P-256 nor RSA of 2048 bits or more");
  }
  const pkcs8 = decodePem(keyPem, "PRIVATE KEY");
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      pkcs8,
      certificateKeyParams(found.algorithm).key,
      false,
      ["sign"],
    );
  } catch {
    throw new TypeError(`Invalid private key: not a ${found.algorithm} key`);
  } finally {
    pkcs8.fill(0);
  }
  const key: UdpSigningKey = { certificate, algorithm: found.algorithm, privateKey };
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const signature = await signTranscript(key, probe);
  const check = await verifyServerSignature({
    certificate,
    algorithm: found.algorithm,
    signature,
    transcriptHash: probe,
  });
  if (check !== null) throw new TypeError("Invalid private key: it does not match the certificate");
  // server_random, server_share, connection_id, sig_alg, cert_len, sig_len: the ACCEPT body's fixed fields.
  // (Signed by a delegated key, the body is longer: a server then signs directly, udp_delegated_credential.ts.)
  const body = RANDOM_BYTES + SHARE_BYTES + CONNECTION_ID_BYTES + 1 + 2 + 2 + certificate.length +
    signature.length;
  if (body > MAX_ACCEPT_BODY) {
    throw new TypeError(
      `Invalid certificate: ${certificate.length} bytes and a signature of ${signature.length} make an ACCEPT ` +
        `body of ${body} bytes, above ${MAX_ACCEPT_BODY}`,
    );
  }
  return key;
}

/**
 * Sign a transcript hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { importUdpSigningKey, signTranscript } from "./udp_server_signature.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
 * assert((await signTranscript(key, new Uint8Array(32))).length === 64);
 * ```
 *
 * @param key The server's signing key.
 * @param transcriptHash 32 bytes.
 * @returns The signature.
 */
export async function signTranscript(
  key: UdpSigningKey,
  transcriptHash: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await crypto.subtle.sign(
      certificateKeyParams(key.algorithm).sign,
      key.privateKey,
      signedMessage(transcriptHash),
    ),
  );
}

/**
 * Check a server signature against the certificate that came with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { importUdpSigningKey, signTranscript, verifyServerSignature } from "./udp_server_signature.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
 * const transcriptHash = new Uint8Array(32);
 * const signature = await signTranscript(key, transcriptHash);
 * const input = { certificate: key.certificate, algorithm: key.algorithm, signature, transcriptHash };
 * assert(await verifyServerSignature(input) === null);
 * assert(await verifyServerSignature({ ...input, transcriptHash: new Uint8Array(32).fill(1) }) === "bad-signature");
 * ```
 *
 * @param input The certificate (DER), the algorithm the ACCEPT names, the signature and the transcript hash.
 * @returns `null` when it verifies, else why not. Never throws on bad input.
 */
export async function verifyServerSignature(input: {
  certificate: Uint8Array;
  algorithm: CertificateAlgorithm;
  signature: Uint8Array<ArrayBuffer>;
  transcriptHash: Uint8Array;
}): Promise<SignatureRefusal | null> {
  let found;
  try {
    found = await verifyingKey(input.certificate);
  } catch {
    return "bad-signature";
  }
  if (found === null) return "bad-certificate";
  if (found.algorithm !== input.algorithm) return "algorithm-mismatch";
  try {
    const ok = await crypto.subtle.verify(
      certificateKeyParams(found.algorithm).sign,
      found.key,
      input.signature,
      signedMessage(input.transcriptHash),
    );
    return ok ? null : "bad-signature";
  } catch {
    return "bad-signature";
  }
}

/** Certificates whose keys {@linkcode verifyingKey} keeps imported (the oldest go first). */
const MAX_VERIFYING_KEYS = 16;
const verifyingKeys = new Map<string, { algorithm: CertificateAlgorithm; key: CryptoKey }>();

/**
 * The certificate's public key, imported for verifying, or `null` for one not accepted. A client opens
 * session after session to the same server: the certificate is parsed and its key imported once.
 *
 * @param der The certificate, DER.
 * @returns Its key's algorithm and the key, or `null`.
 * @throws {Error} When the key does not import.
 */
export async function verifyingKey(
  der: Uint8Array,
): Promise<{ algorithm: CertificateAlgorithm; key: CryptoKey } | null> {
  const id = der.toBase64();
  const known = verifyingKeys.get(id);
  if (known !== undefined) return known;
  const found = certificateKey(der);
  if (found === null) return null;
  const key = await crypto.subtle.importKey(
    "spki",
    found.spki,
    certificateKeyParams(found.algorithm).key,
    false,
    [
      "verify",
    ],
  );
  const entry = { algorithm: found.algorithm, key };
  if (verifyingKeys.size >= MAX_VERIFYING_KEYS) verifyingKeys.delete(verifyingKeys.keys().next().value!);
  verifyingKeys.set(id, entry);
  return entry;
}
