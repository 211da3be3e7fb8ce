/**
 * Recognising a TLS record by its first bytes (RFC 8446 §5.1): what a TLS
 * peer sends or answers on a port that expected authchat frames. An authchat
 * frame never starts like one: its 4-byte length is at most 65536, so its first
 * byte is always 0.
 *
 * @module
 */

/** Content types of TLS records: change_cipher_spec, alert, handshake, application_data, heartbeat. */
const CONTENT_TYPES = new Set([20, 21, 22, 23, 24]);

/** Longest record a TLS peer may send: 2^14 bytes plus 2048 of expansion. */
const MAX_RECORD_BYTES = 16384 + 2048;

/** What a record's content type says the peer was doing. */
export type TlsRecordKind = "alert" | "handshake" | "other";

/**
 * Tell whether bytes start like a TLS record: a content type 20–24, protocol version 3.0 to 3.4
 * (SSL 3.0 to the value TLS 1.3 keeps in its records), and a length a TLS peer may send. Three bytes are
 * enough to decide; the length is checked when its bytes are there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tlsRecordKind } from "./tls_record.ts";
 * // A TLS server's alert, as a plain TCP client on a TLS port reads it.
 * assert(tlsRecordKind(new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32])) === "alert");
 * assert(tlsRecordKind(new Uint8Array([0x00, 0x00, 0x00, 0x2a])) === null);
 * ```
 *
 * @param bytes The first bytes a peer sent.
 * @returns `"handshake"` (a ClientHello or ServerHello), `"alert"`, `"other"` for another record type, or
 *   `null` when the bytes are not a TLS record header (or fewer than three).
 */
export function tlsRecordKind(bytes: Uint8Array): TlsRecordKind | null {
  if (bytes.length < 3) return null;
  const type = bytes[0]!;
  if (!CONTENT_TYPES.has(type) || bytes[1] !== 3 || bytes[2]! > 4) return null;
  if (bytes.length >= 5 && bytes[3]! * 256 + bytes[4]! > MAX_RECORD_BYTES) return null;
  return type === 21 ? "alert" : type === 22 ? "handshake" : "other";
}
