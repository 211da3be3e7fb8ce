/**
 * Datagram layouts of the UDP side: rendezvous and relay with the server,
 * handshakes and encrypted data between peers (docs/PROTOCOL.md, "Datagrams").
 *
 * Every datagram starts with {@linkcode MAGIC}, {@linkcode DATAGRAM_VERSION}
 * and a type byte; integers are big-endian. The server kinds end in a 16-byte
 * tag, HMAC-SHA-256 truncated, over every byte before it. The codec does no
 * crypto: it only splits and joins bytes. Its encoders of server kinds give
 * the bytes the tag covers, {@linkcode joinTag} appends a tag, and
 * {@linkcode decodeDatagram} splits one off (`macInput` and `tag`); the key,
 * tagging and verification live in `lib/crypto/datagram_tag.ts`.
 *
 * @module
 */

import {
  checkInner,
  DATA_HEADER_BYTES,
  DatagramWriter,
  decodeBody,
  MAX_DATAGRAM,
  MAX_PEER_DATAGRAM,
  T,
  TAG_BYTES,
} from "./_datagram_bytes.ts";
import type { Datagram } from "./datagram_types.ts";

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
 * A writer for the bytes a server datagram's tag covers, leaving room for the tag within
 * {@linkcode MAX_DATAGRAM}.
 */
function macWriter(type: number): DatagramWriter {
  return new DatagramWriter(type, MAX_DATAGRAM - TAG_BYTES);
}

/**
 * Join the bytes a tag covers and the tag into a whole server datagram (RDV, RDV_ACK, RELAY, RELAYED).
 * The tag is computed by the caller: `tagDatagram` in `lib/crypto/datagram_tag.ts` does both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdv, joinTag } from "./datagram.ts";
 * const macInput = encodeRdv({ handle: new Uint8Array(16), counter: 7 });
 * const d = decodeDatagram(joinTag(macInput, new Uint8Array(16).fill(9)));
 * assert(d.type === "RDV" && d.counter === 7 && d.tag[0] === 9);
 * ```
 *
 * @param macInput Output of {@linkcode encodeRdv}, {@linkcode encodeRdvAck}, {@linkcode encodeRelay} or
 *   {@linkcode encodeRelayed}.
 * @param tag The {@linkcode TAG_BYTES}-byte tag over `macInput`.
 * @returns The datagram, in a buffer of its own.
 * @throws {RangeError} When the tag is not {@linkcode TAG_BYTES} bytes or the datagram would exceed
 *   {@linkcode MAX_DATAGRAM}.
 */
export function joinTag(macInput: Uint8Array, tag: Uint8Array): Uint8Array<ArrayBuffer> {
  if (tag.length !== TAG_BYTES) throw new RangeError(`Tag must be ${TAG_BYTES} bytes: got ${tag.length}`);
  const length = macInput.length + TAG_BYTES;
  if (length > MAX_DATAGRAM) {
    throw new RangeError(`Datagram too large: ${length} bytes exceeds ${MAX_DATAGRAM}`);
  }
  const out = new Uint8Array(length);
  out.set(macInput);
  out.set(tag, macInput.length);
  return out;
}

/**
 * The bytes of an RDV that its tag covers (everything but the tag).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRdv } from "./datagram.ts";
 * const bytes = encodeRdv({ handle: new Uint8Array(16), counter: 0 });
 * assert(bytes.length === 3 + 16 + 8);
 * ```
 *
 * @param fields 16-byte `handle` and `counter` (safe integer ≥ 0).
 * @returns The datagram without its tag: tag it with `tagDatagram` (`lib/crypto/datagram_tag.ts`).
 * @throws {RangeError} When a field is out of range.
 */
export function encodeRdv(fields: { handle: Uint8Array; counter: number }): Uint8Array<ArrayBuffer> {
  return macWriter(T.RDV).bytes(fields.handle, "handle", 16).counter(fields.counter, "counter").finish();
}

/**
 * The bytes of an RDV_ACK that its tag covers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdvAck, joinTag } from "./datagram.ts";
 * const fields = { handle: new Uint8Array(16), counter: 1, observed: "[::1]:9" };
 * const d = decodeDatagram(joinTag(encodeRdvAck(fields), new Uint8Array(16)));
 * assert(d.type === "RDV_ACK" && d.observed === "[::1]:9");
 * ```
 *
 * @param fields 16-byte `handle`, `counter` of the RDV answered, `observed` address (1..255 UTF-8 bytes).
 * @returns The datagram without its tag: tag it with `tagDatagram` (`lib/crypto/datagram_tag.ts`).
 * @throws {RangeError} When a field is out of range.
 */
export function encodeRdvAck(
  fields: { handle: Uint8Array; counter: number; observed: string },
): Uint8Array<ArrayBuffer> {
  return macWriter(T.RDV_ACK).bytes(fields.handle, "handle", 16).counter(fields.counter, "counter")
    .str8(fields.observed, "observed address").finish();
}

/**
 * The bytes of a RELAY that its tag covers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeData, encodeDataHeader, encodeRelay, joinTag } from "./datagram.ts";
 * const inner = encodeData(encodeDataHeader(new Uint8Array(8), 0), new Uint8Array(16));
 * const macInput = encodeRelay({ handle: new Uint8Array(16), counter: 2, to: 5, inner });
 * const d = decodeDatagram(joinTag(macInput, new Uint8Array(16)));
 * assert(d.type === "RELAY" && d.to === 5 && d.peer.type === "DATA");
 * ```
 *
 * @param fields 16-byte `handle`, `counter`, recipient relay id `to` (u32), and `inner`: a whole HS1, HS2
 *   or DATA datagram of at most {@linkcode MAX_PEER_DATAGRAM} bytes.
 * @returns The datagram without its tag: tag it with `tagDatagram` (`lib/crypto/datagram_tag.ts`).
 * @throws {RangeError} When a field is out of range or `inner` is not a valid peer datagram.
 */
export function encodeRelay(
  fields: { handle: Uint8Array; counter: number; to: number; inner: Uint8Array },
): Uint8Array<ArrayBuffer> {
  checkInner(fields.inner);
  return macWriter(T.RELAY).bytes(fields.handle, "handle", 16).counter(fields.counter, "counter")
    .u32(fields.to, "to").bytes(fields.inner, "inner").finish();
}

/**
 * The bytes of a RELAYED that its tag covers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeData, encodeDataHeader, encodeRelayed } from "./datagram.ts";
 * const inner = encodeData(encodeDataHeader(new Uint8Array(8), 0), new Uint8Array(16));
 * const bytes = encodeRelayed({ from: 1, inner });
 * assert(bytes.length === 3 + 4 + inner.length);
 * ```
 *
 * @param fields Sender relay id `from` (u32) and `inner`, as for {@linkcode encodeRelay}.
 * @returns The datagram without its tag: tag it with `tagDatagram` (`lib/crypto/datagram_tag.ts`).
 * @throws {RangeError} When a field is out of range or `inner` is not a valid peer datagram.
 */
export function encodeRelayed(fields: { from: number; inner: Uint8Array }): Uint8Array<ArrayBuffer> {
  checkInner(fields.inner);
  return macWriter(T.RELAYED).u32(fields.from, "from").bytes(fields.inner, "inner").finish();
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
