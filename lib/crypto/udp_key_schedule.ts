/**
 * Key schedule of a server session over UDP (docs/PROTOCOL.md 20.6): from the
 * X25519 shared secret and the transcript hash, HKDF-SHA-256 gives a
 * handshake secret; from it a traffic secret per direction, the FINISH key and
 * the SCRAM channel binding; from a traffic secret an AES-256-GCM key and IV,
 * and the next generation's traffic secret.
 *
 * Every step is a whole HKDF (extract and expand, RFC 5869) from `node:crypto`,
 * synchronous so that the record layer can step to the next key generation in
 * the middle of opening a record; the tests check it against WebCrypto's HKDF.
 *
 * @module
 */

import { createHash, createHmac, hkdfSync } from "node:crypto";

/** Bytes of every secret of the schedule. */
export const SECRET_BYTES = 32;
/** Bytes of an AES-GCM IV. */
export const IV_BYTES = 12;
/** Name of the SCRAM-SHA-256-PLUS channel binding type over a UDP session. */
export const UDP_CHANNEL_BINDING_TYPE = "authchat-udp-exporter";

/** The HKDF `info` labels, each the ASCII bytes of the string. */
export const LABELS = {
  handshake: "authchat-udp/1 handshake secret",
  clientTraffic: "authchat-udp/1 c2s traffic",
  serverTraffic: "authchat-udp/1 s2c traffic",
  finish: "authchat-udp/1 finish key",
  exporter: "authchat-udp/1 exporter authchat-udp-exporter",
  key: "authchat-udp/1 key",
  iv: "authchat-udp/1 iv",
  update: "authchat-udp/1 key update",
} as const;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** What both sides derive once the ACCEPT is signed (server) or verified (client). */
export interface HandshakeSecrets {
  /** Generation-0 traffic secret of client-to-server records. */
  clientTraffic: Uint8Array<ArrayBuffer>;
  /** Generation-0 traffic secret of server-to-client records. */
  serverTraffic: Uint8Array<ArrayBuffer>;
  /** HMAC-SHA-256 key of the FINISH `verify_data`. */
  finishKey: Uint8Array<ArrayBuffer>;
  /** SCRAM-SHA-256-PLUS channel binding data ({@linkcode UDP_CHANNEL_BINDING_TYPE}), 32 bytes. */
  channelBinding: Uint8Array<ArrayBuffer>;
}

/** An AES-256-GCM key and IV of one direction and generation. */
export interface TrafficKeys {
  /** 32 bytes. */
  key: Uint8Array<ArrayBuffer>;
  /** 12 bytes; a record's nonce is this IV XOR its counter (big-endian, right-aligned). */
  iv: Uint8Array<ArrayBuffer>;
}

function hkdf(ikm: Uint8Array, salt: Uint8Array, label: string, bytes: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, encoder.encode(label), bytes));
}

/**
 * SHA-256 of the transcript: the INIT's `version ‖ client_random ‖ client_share`, then the ACCEPT's
 * signed bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { transcriptHash } from "./udp_key_schedule.ts";
 * assert(transcriptHash(new Uint8Array(65), new Uint8Array(80)).length === 32);
 * ```
 *
 * @param initBytes The 65 INIT bytes.
 * @param acceptSigned The ACCEPT's signed bytes.
 * @returns 32 bytes.
 */
export function transcriptHash(initBytes: Uint8Array, acceptSigned: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash("sha256").update(initBytes).update(acceptSigned).digest());
}

/**
 * Derive the handshake's secrets: `HS = HKDF(ikm = shared, salt = TH, info = "authchat-udp/1 handshake
 * secret")`, then each secret as `HKDF(ikm = HS, salt = empty, info = label)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deriveHandshakeSecrets } from "./udp_key_schedule.ts";
 * const s = deriveHandshakeSecrets(new Uint8Array(32).fill(1), new Uint8Array(32));
 * assert(s.clientTraffic.toHex() !== s.serverTraffic.toHex() && s.channelBinding.length === 32);
 * ```
 *
 * @param shared The X25519 shared secret (32 bytes, not all zero).
 * @param transcriptHash The transcript hash (32 bytes).
 * @returns The secrets.
 * @throws {RangeError} When an input is not 32 bytes.
 */
export function deriveHandshakeSecrets(
  shared: Uint8Array,
  transcriptHash: Uint8Array,
): HandshakeSecrets {
  if (shared.length !== SECRET_BYTES || transcriptHash.length !== SECRET_BYTES) {
    throw new RangeError("Invalid key schedule input: the shared secret and transcript hash are 32 bytes");
  }
  const hs = hkdf(shared, transcriptHash, LABELS.handshake, SECRET_BYTES);
  try {
    return {
      clientTraffic: hkdf(hs, EMPTY, LABELS.clientTraffic, SECRET_BYTES),
      serverTraffic: hkdf(hs, EMPTY, LABELS.serverTraffic, SECRET_BYTES),
      finishKey: hkdf(hs, EMPTY, LABELS.finish, SECRET_BYTES),
      channelBinding: hkdf(hs, EMPTY, LABELS.exporter, SECRET_BYTES),
    };
  } finally {
    hs.fill(0);
  }
}

/**
 * The AES-256-GCM key and IV of a traffic secret: `HKDF(secret, empty salt, "authchat-udp/1 key")`, 32
 * bytes, and `HKDF(secret, empty salt, "authchat-udp/1 iv")`, 12 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trafficKeys } from "./udp_key_schedule.ts";
 * const k = trafficKeys(new Uint8Array(32));
 * assert(k.key.length === 32 && k.iv.length === 12);
 * ```
 *
 * @param secret A traffic secret.
 * @returns Key and IV.
 */
export function trafficKeys(secret: Uint8Array): TrafficKeys {
  return { key: hkdf(secret, EMPTY, LABELS.key, 32), iv: hkdf(secret, EMPTY, LABELS.iv, IV_BYTES) };
}

/**
 * The next generation's traffic secret: `HKDF(secret, empty salt, "authchat-udp/1 key update")`. One-way,
 * so a later generation's secret does not open earlier records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextTrafficSecret } from "./udp_key_schedule.ts";
 * const s0 = new Uint8Array(32);
 * assert(nextTrafficSecret(s0).toHex() !== s0.toHex());
 * ```
 *
 * @param secret This generation's traffic secret.
 * @returns The next one.
 */
export function nextTrafficSecret(secret: Uint8Array): Uint8Array<ArrayBuffer> {
  return hkdf(secret, EMPTY, LABELS.update, SECRET_BYTES);
}

/**
 * The FINISH `verify_data`: HMAC-SHA-256(finish key, transcript hash).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { finishVerifyData } from "./udp_key_schedule.ts";
 * assert(finishVerifyData(new Uint8Array(32), new Uint8Array(32)).length === 32);
 * ```
 *
 * @param finishKey From {@linkcode deriveHandshakeSecrets}.
 * @param transcriptHash The transcript hash.
 * @returns 32 bytes.
 */
export function finishVerifyData(finishKey: Uint8Array, transcriptHash: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHmac("sha256", finishKey).update(transcriptHash).digest());
}
