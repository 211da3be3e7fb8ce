/**
 * Datagram layouts of the UDP side: rendezvous and relay with the server,
 * handshakes and encrypted data between peers (docs/PROTOCOL.md, "Datagrams").
 *
 * Every datagram starts with {@linkcode MAGIC}, {@linkcode DATAGRAM_VERSION}
 * and a type byte; integers are big-endian. The server kinds end in a 16-byte
 * tag, HMAC-SHA-256 truncated, over every byte before it. The codec only
 * splits and joins; {@linkcode verifyDatagramTag} checks a tag.
 *
 * @module
 */

import {
  checkInner,
  DATA_HEADER_BYTES,
  DatagramWriter,
  decodeBody,
  MAX_PEER_DATAGRAM,
  T,
  truncatedHmac,
  withTag,
} from "./_datagram_bytes.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import type { Datagram, MacFields } from "./datagram_types.ts";

export {
  DATA_HEADER_BYTES,
  DATAGRAM_VERSION,
  hs1SignedBytes,
  hs2SignedBytes,
  MAGIC,
  MAX_DATAGRAM,
  MAX_PEER_DATAGRAM,
  TAG_BYTES,
} from "./_datagram_bytes.ts";

export type {
  DataDatagram,
  Datagram,
  Hs1Datagram,
  Hs2Datagram,
  MacDatagram,
  MacFields,
  PeerDatagram,
  RdvAckDatagram,
  RdvDatagram,
  RelayDatagram,
  RelayedDatagram,
} from "./datagram_types.ts";

/**
 * Decode and check the layout of a datagram (not its tag or signature).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeData, encodeDataHeader } from "./datagram.ts";
 * const d = decodeDatagram(encodeData(encodeDataHeader(new Uint8Array(8), 3), new Uint8Array(16)));
 * assert(d.type === "DATA" && d.counter === 3 && d.header.length === 19);
 * ```
 *
 * @param bytes One received datagram. It is copied; the result's fields are views into the copy.
 * @returns The datagram.
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed; nothing else is ever thrown.
 */
export function decodeDatagram(bytes: Uint8Array): Datagram {
  return decodeBody(bytes.slice());
}

/**
 * Import a session's 32-byte UDP key for tagging server datagrams.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importUdpKey } from "./datagram.ts";
 * const key = await importUdpKey(new Uint8Array(32).fill(1));
 * assert(key.usages.includes("sign"));
 * ```
 *
 * @param raw32 The 32 key bytes.
 * @returns An HMAC SHA-256 key, usable to sign only, not extractable.
 * @throws {RangeError} When `raw32` is not 32 bytes.
 */
export async function importUdpKey(raw32: Uint8Array): Promise<CryptoKey> {
  if (raw32.length !== 32) throw new RangeError(`UDP key must be 32 bytes: got ${raw32.length}`);
  return await crypto.subtle.importKey("raw", raw32.slice(), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/**
 * Check the tag of a decoded server datagram, in constant time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdv, importUdpKey, verifyDatagramTag } from "./datagram.ts";
 * const key = await importUdpKey(new Uint8Array(32));
 * const d = decodeDatagram(await encodeRdv({ handle: new Uint8Array(16), counter: 7 }, key));
 * if (d.type !== "RDV") throw new Error("not an RDV");
 * assert(await verifyDatagramTag(key, d));
 * d.tag[0]! ^= 1;
 * assert(!await verifyDatagramTag(key, d));
 * ```
 *
 * @param key Key from {@linkcode importUdpKey}.
 * @param d A decoded RDV, RDV_ACK, RELAY or RELAYED.
 * @returns Whether the tag is right.
 */
export async function verifyDatagramTag(key: CryptoKey, d: MacFields): Promise<boolean> {
  return constantTimeEqual(await truncatedHmac(key, d.macInput), d.tag);
}

/**
 * Encode a tagged RDV.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRdv, importUdpKey } from "./datagram.ts";
 * const key = await importUdpKey(new Uint8Array(32));
 * const bytes = await encodeRdv({ handle: new Uint8Array(16), counter: 0 }, key);
 * assert(bytes.length === 3 + 16 + 8 + 16);
 * ```
 *
 * @param fields 16-byte `handle` and `counter` (safe integer ≥ 0).
 * @param key Key from {@linkcode importUdpKey}.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range.
 */
export async function encodeRdv(
  fields: { handle: Uint8Array; counter: number },
  key: CryptoKey,
): Promise<Uint8Array<ArrayBuffer>> {
  const w = new DatagramWriter(T.RDV).bytes(fields.handle, "handle", 16).counter(fields.counter, "counter");
  return await withTag(w, key);
}

/**
 * Encode a tagged RDV_ACK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdvAck, importUdpKey } from "./datagram.ts";
 * const key = await importUdpKey(new Uint8Array(32));
 * const fields = { handle: new Uint8Array(16), counter: 1, observed: "[::1]:9" };
 * const d = decodeDatagram(await encodeRdvAck(fields, key));
 * assert(d.type === "RDV_ACK" && d.observed === "[::1]:9");
 * ```
 *
 * @param fields 16-byte `handle`, `counter` of the RDV answered, `observed` address (1..255 UTF-8 bytes).
 * @param key Key from {@linkcode importUdpKey}.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range.
 */
export async function encodeRdvAck(
  fields: { handle: Uint8Array; counter: number; observed: string },
  key: CryptoKey,
): Promise<Uint8Array<ArrayBuffer>> {
  const w = new DatagramWriter(T.RDV_ACK).bytes(fields.handle, "handle", 16).counter(
    fields.counter,
    "counter",
  );
  return await withTag(w.str8(fields.observed, "observed address"), key);
}

/**
 * Encode a tagged RELAY.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeData, encodeDataHeader, encodeRelay, importUdpKey } from "./datagram.ts";
 * const inner = encodeData(encodeDataHeader(new Uint8Array(8), 0), new Uint8Array(16));
 * const key = await importUdpKey(new Uint8Array(32));
 * const d = decodeDatagram(await encodeRelay({ handle: new Uint8Array(16), counter: 2, to: 5, inner }, key));
 * assert(d.type === "RELAY" && d.to === 5 && d.peer.type === "DATA");
 * ```
 *
 * @param fields 16-byte `handle`, `counter`, recipient relay id `to` (u32), and `inner`: a whole HS1, HS2
 *   or DATA datagram of at most {@linkcode MAX_PEER_DATAGRAM} bytes.
 * @param key Key from {@linkcode importUdpKey}.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range or `inner` is not a valid peer datagram.
 */
export async function encodeRelay(
  fields: { handle: Uint8Array; counter: number; to: number; inner: Uint8Array },
  key: CryptoKey,
): Promise<Uint8Array<ArrayBuffer>> {
  checkInner(fields.inner);
  const w = new DatagramWriter(T.RELAY).bytes(fields.handle, "handle", 16).counter(fields.counter, "counter");
  return await withTag(w.u32(fields.to, "to").bytes(fields.inner, "inner"), key);
}

/**
 * Encode a tagged RELAYED.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeData, encodeDataHeader, encodeRelayed, importUdpKey } from "./datagram.ts";
 * const inner = encodeData(encodeDataHeader(new Uint8Array(8), 0), new Uint8Array(16));
 * const bytes = await encodeRelayed({ from: 1, inner }, await importUdpKey(new Uint8Array(32)));
 * assert(bytes.length === 3 + 4 + inner.length + 16);
 * ```
 *
 * @param fields Sender relay id `from` (u32) and `inner`, as for {@linkcode encodeRelay}.
 * @param key Key from {@linkcode importUdpKey}.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range or `inner` is not a valid peer datagram.
 */
export async function encodeRelayed(
  fields: { from: number; inner: Uint8Array },
  key: CryptoKey,
): Promise<Uint8Array<ArrayBuffer>> {
  checkInner(fields.inner);
  return await withTag(
    new DatagramWriter(T.RELAYED).u32(fields.from, "from").bytes(fields.inner, "inner"),
    key,
  );
}

/**
 * Encode an HS1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeHs1 } from "./datagram.ts";
 * const eph = new Uint8Array(32);
 * const d = decodeDatagram(encodeHs1({ from: "ann", to: "bob", eph, sig: new Uint8Array(64) }));
 * assert(d.type === "HS1" && d.from === "ann");
 * ```
 *
 * @param fields User keys `from` and `to` (1..255 UTF-8 bytes), 32-byte `eph`, 64-byte `sig`.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range.
 */
export function encodeHs1(
  fields: { from: string; to: string; eph: Uint8Array; sig: Uint8Array },
): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(T.HS1).str8(fields.from, "from").str8(fields.to, "to")
    .bytes(fields.eph, "ephemeral key", 32).bytes(fields.sig, "signature", 64).finish();
}

/**
 * Encode an HS2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeHs2 } from "./datagram.ts";
 * const e = new Uint8Array(32);
 * const bytes = encodeHs2({ from: "bob", to: "ann", ephInit: e, ephResp: e, sig: new Uint8Array(64) });
 * assert(bytes.length === 3 + 4 + 4 + 32 + 32 + 64);
 * ```
 *
 * @param fields User keys `from` and `to` (1..255 UTF-8 bytes), 32-byte `ephInit` and `ephResp`,
 *   64-byte `sig`.
 * @returns The datagram.
 * @throws {RangeError} When a field is out of range.
 */
export function encodeHs2(
  fields: { from: string; to: string; ephInit: Uint8Array; ephResp: Uint8Array; sig: Uint8Array },
): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(T.HS2).str8(fields.from, "from").str8(fields.to, "to")
    .bytes(fields.ephInit, "initiator ephemeral key", 32).bytes(fields.ephResp, "responder ephemeral key", 32)
    .bytes(fields.sig, "signature", 64).finish();
}

/**
 * The header of a DATA datagram: the AES-GCM associated data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeDataHeader } from "./datagram.ts";
 * const header = encodeDataHeader(new Uint8Array(8), 258);
 * assert(header.length === 19 && header[17] === 1 && header[18] === 2);
 * ```
 *
 * @param session 8-byte session id.
 * @param counter Message counter, at most 2^53 - 1.
 * @returns 19 bytes.
 * @throws {RangeError} When the session id is not 8 bytes or the counter is not a safe integer ≥ 0.
 */
export function encodeDataHeader(session: Uint8Array, counter: number): Uint8Array<ArrayBuffer> {
  // Exactly its size: this runs for every message and acknowledgement, sealed and opened.
  return new DatagramWriter(T.DATA, DATA_HEADER_BYTES).bytes(session, "session id", 8).counter(
    counter,
    "counter",
  )
    .finish();
}

/**
 * A whole DATA datagram.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeData, encodeDataHeader } from "./datagram.ts";
 * assert(encodeData(encodeDataHeader(new Uint8Array(8), 0), new Uint8Array(16)).length === 35);
 * ```
 *
 * @param header Output of {@linkcode encodeDataHeader}.
 * @param ciphertext AES-GCM output, at least 16 bytes.
 * @returns The datagram.
 * @throws {RangeError} When the header is not 19 bytes, the ciphertext is shorter than 16 bytes, or the
 *   datagram would exceed {@linkcode MAX_PEER_DATAGRAM}.
 */
export function encodeData(header: Uint8Array, ciphertext: Uint8Array): Uint8Array<ArrayBuffer> {
  if (header.length !== DATA_HEADER_BYTES) {
    throw new RangeError(`DATA header must be ${DATA_HEADER_BYTES} bytes: got ${header.length}`);
  }
  if (ciphertext.length < 16) throw new RangeError(`Ciphertext too short: ${ciphertext.length} bytes`);
  const length = header.length + ciphertext.length;
  if (length > MAX_PEER_DATAGRAM) {
    throw new RangeError(`Datagram too large: ${length} bytes exceeds ${MAX_PEER_DATAGRAM}`);
  }
  const out = new Uint8Array(length);
  out.set(header);
  out.set(ciphertext, header.length);
  return out;
}
