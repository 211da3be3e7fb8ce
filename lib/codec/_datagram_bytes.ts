/**
 * Byte-level layout of datagrams, private to `datagram.ts` (which re-exports
 * the constants and the signed-bytes builders): a cursor-based reader that
 * turns every malformation into a `BAD_DATAGRAM` protocol error, the body
 * decoder, and a writer that refuses bad fields with a `RangeError`.
 *
 * @module
 */

import type { Datagram, MacFields, PeerDatagram } from "./datagram_types.ts";
import { ProtocolError } from "./protocol_error.ts";

/** Largest datagram sent or accepted. */
export const MAX_DATAGRAM = 1200;
/** Largest peer datagram, so that a relayed one still fits {@linkcode MAX_DATAGRAM}. */
export const MAX_PEER_DATAGRAM = 1150;
/** First byte of every datagram. */
export const MAGIC = 0xac;
/** Datagram format version. */
export const DATAGRAM_VERSION = 1;
/** Bytes of a DATA header: prefix, session id, counter. */
export const DATA_HEADER_BYTES = 19;
/** Bytes of the tag that ends a server datagram (computed and checked in `lib/crypto/datagram_tag.ts`). */
export const TAG_BYTES = 16;

/** Type bytes. */
export const T = {
  RDV: 0x01,
  RDV_ACK: 0x02,
  RELAY: 0x03,
  RELAYED: 0x04,
  HS1: 0x10,
  HS2: 0x11,
  DATA: 0x20,
} as const;

const HS1_LABEL = new TextEncoder().encode("authchat-hs1/1");
const HS2_LABEL = new TextEncoder().encode("authchat-hs2/1");

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8 = new TextEncoder();

/** The high word of 2^53 - 1, the largest counter. */
const MAX_COUNTER_HIGH = 0x1fffff;

function bad(message: string): never {
  throw new ProtocolError("BAD_DATAGRAM", message);
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/** Reads fields front to back, never past the end; fields returned are views into the buffer; a short or bad field throws `BAD_DATAGRAM`. */
export class DatagramReader {
  #buf: Uint8Array<ArrayBuffer>;
  #view: DataView;
  #pos = 0;

  constructor(buf: Uint8Array<ArrayBuffer>) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  /** Every byte read so far. */
  consumed(): Uint8Array<ArrayBuffer> {
    return this.#buf.subarray(0, this.#pos);
  }

  #need(n: number, what: string): void {
    if (this.remaining < n) {
      bad(`Truncated datagram: ${what} needs ${n} bytes at offset ${this.#pos}, ${this.remaining} left`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#view.getUint8(this.#pos++);
  }

  u32(what: string): number {
    this.#need(4, what);
    const value = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return value;
  }

  /** A big-endian u64 that must fit a safe integer. */
  counter(what: string): number {
    this.#need(8, what);
    const high = this.#view.getUint32(this.#pos);
    if (high > MAX_COUNTER_HIGH) bad(`Bad datagram: ${what} exceeds 2^53 - 1`);
    const low = this.#view.getUint32(this.#pos + 4);
    this.#pos += 8;
    return high * 2 ** 32 + low;
  }

  bytes(n: number, what: string): Uint8Array<ArrayBuffer> {
    this.#need(n, what);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Everything except the last `keep` bytes. */
  upTo(keep: number, what: string): Uint8Array<ArrayBuffer> {
    this.#need(keep, what);
    return this.bytes(this.remaining - keep, what);
  }

  /** A non-empty, valid UTF-8 string behind a u8 length. */
  str8(what: string): string {
    const length = this.u8(what);
    if (length === 0) bad(`Bad datagram: ${what} is empty`);
    const raw = this.bytes(length, what);
    try {
      return fatalUtf8.decode(raw);
    } catch {
      return bad(`Bad datagram: ${what} is not valid UTF-8`);
    }
  }

  end(kind: string): void {
    if (this.remaining !== 0) bad(`Bad datagram: ${this.remaining} trailing bytes after ${kind}`);
  }

  /** Magic and version; returns the type byte. */
  prefix(): number {
    const magic = this.u8("magic");
    if (magic !== MAGIC) bad(`Bad datagram: magic ${hex(magic)} is not ${hex(MAGIC)}`);
    const version = this.u8("version");
    if (version !== DATAGRAM_VERSION) bad(`Bad datagram: unsupported version ${version}`);
    return this.u8("type");
  }

  /** The tag, which must end the datagram, and the bytes it covers. */
  tag(kind: string): MacFields {
    const macInput = this.consumed();
    const tag = this.bytes(TAG_BYTES, `${kind} tag`);
    this.end(kind);
    return { macInput, tag };
  }
}

/**
 * Decode a datagram's layout.
 *
 * @param buf A private copy of the datagram: the result's fields are views into it.
 * @returns The datagram.
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed.
 */
export function decodeBody(buf: Uint8Array<ArrayBuffer>): Datagram {
  if (buf.length > MAX_DATAGRAM) bad(`Datagram too large: ${buf.length} bytes exceeds ${MAX_DATAGRAM}`);
  const r = new DatagramReader(buf);
  const type = r.prefix();
  switch (type) {
    case T.RDV: {
      const handle = r.bytes(16, "RDV handle");
      const counter = r.counter("RDV counter");
      return { type: "RDV", handle, counter, ...r.tag("RDV") };
    }
    case T.RDV_ACK: {
      const handle = r.bytes(16, "RDV_ACK handle");
      const counter = r.counter("RDV_ACK counter");
      const observed = r.str8("RDV_ACK observed address");
      return { type: "RDV_ACK", handle, counter, observed, ...r.tag("RDV_ACK") };
    }
    case T.RELAY: {
      const handle = r.bytes(16, "RELAY handle");
      const counter = r.counter("RELAY counter");
      const to = r.u32("RELAY to");
      const inner = r.upTo(TAG_BYTES, "RELAY inner and tag");
      return { type: "RELAY", handle, counter, to, inner, peer: decodeInner(inner), ...r.tag("RELAY") };
    }
    case T.RELAYED: {
      const from = r.u32("RELAYED from");
      const inner = r.upTo(TAG_BYTES, "RELAYED inner and tag");
      return { type: "RELAYED", from, inner, peer: decodeInner(inner), ...r.tag("RELAYED") };
    }
    default:
      return decodePeer(buf, r, type, "datagram");
  }
}

/** Decode the peer datagram carried by a RELAY or RELAYED; views stay inside `inner`. */
function decodeInner(inner: Uint8Array<ArrayBuffer>): PeerDatagram {
  if (inner.length > MAX_PEER_DATAGRAM) {
    bad(`Bad datagram: inner datagram of ${inner.length} bytes exceeds ${MAX_PEER_DATAGRAM}`);
  }
  const r = new DatagramReader(inner);
  return decodePeer(inner, r, r.prefix(), "inner");
}

function decodePeer(
  buf: Uint8Array<ArrayBuffer>,
  r: DatagramReader,
  type: number,
  where: "datagram" | "inner",
): PeerDatagram {
  if (type !== T.HS1 && type !== T.HS2 && type !== T.DATA) {
    bad(
      where === "inner"
        ? `Bad datagram: inner type ${hex(type)} is not a peer datagram`
        : `Bad datagram: unknown type ${hex(type)}`,
    );
  }
  if (buf.length > MAX_PEER_DATAGRAM) {
    bad(`Datagram too large: peer datagram of ${buf.length} bytes exceeds ${MAX_PEER_DATAGRAM}`);
  }
  if (type === T.DATA) {
    const session = r.bytes(8, "DATA session");
    const counter = r.counter("DATA counter");
    const header = r.consumed();
    const ciphertext = r.upTo(0, "DATA ciphertext");
    if (ciphertext.length < 16) bad(`Truncated datagram: DATA ciphertext of ${ciphertext.length} bytes`);
    return { type: "DATA", session, counter, header, ciphertext };
  }
  const kind = type === T.HS1 ? "HS1" : "HS2";
  const from = r.str8(`${kind} from`);
  const to = r.str8(`${kind} to`);
  if (type === T.HS1) {
    const eph = r.bytes(32, "HS1 ephemeral key");
    const sig = r.bytes(64, "HS1 signature");
    r.end("HS1");
    return { type: "HS1", from, to, eph, sig };
  }
  const ephInit = r.bytes(32, "HS2 initiator ephemeral key");
  const ephResp = r.bytes(32, "HS2 responder ephemeral key");
  const sig = r.bytes(64, "HS2 signature");
  r.end("HS2");
  return { type: "HS2", from, to, ephInit, ephResp, sig };
}

/** Builds a datagram of at most {@linkcode MAX_DATAGRAM} bytes, front to back; refuses bad fields. */
export class DatagramWriter {
  #buf: Uint8Array<ArrayBuffer>;
  #view: DataView<ArrayBuffer>;
  #pos = 0;

  /**
   * Start a datagram with its prefix, or (for signed bytes) with nothing.
   *
   * @param type The type byte, or `null` for no prefix.
   * @param capacity Most bytes it may hold (default {@linkcode MAX_DATAGRAM}); a datagram of a known size
   *   (a DATA header, made for every message) is written exactly, and `finish` copies nothing.
   */
  constructor(type: number | null, capacity: number = MAX_DATAGRAM) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
    if (type !== null) this.u8(MAGIC).u8(DATAGRAM_VERSION).u8(type);
  }

  #room(n: number): void {
    if (this.#pos + n > this.#buf.length) {
      throw new RangeError(`Datagram too large: more than ${this.#buf.length} bytes`);
    }
  }

  /** @param value 0..255. @returns This writer. */
  u8(value: number): this {
    this.#room(1);
    this.#view.setUint8(this.#pos++, value);
    return this;
  }

  /** @param value A u32. @param what Field name. @returns This writer. */
  u32(value: number, what: string): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(`Invalid ${what}: ${value} is not a u32`);
    }
    this.#room(4);
    this.#view.setUint32(this.#pos, value);
    this.#pos += 4;
    return this;
  }

  /** @param value A safe integer ≥ 0, written as a u64. @param what Field name. @returns This writer. */
  counter(value: number, what: string): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`Invalid ${what}: ${value}`);
    this.#room(8);
    this.#view.setUint32(this.#pos, Math.floor(value / 2 ** 32));
    this.#view.setUint32(this.#pos + 4, value >>> 0);
    this.#pos += 8;
    return this;
  }

  /** @param bytes The bytes. @param what Field name. @param length Required length. @returns This writer. */
  bytes(bytes: Uint8Array, what: string, length?: number): this {
    if (length !== undefined && bytes.length !== length) {
      throw new RangeError(`Invalid ${what}: must be ${length} bytes, got ${bytes.length}`);
    }
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
    return this;
  }

  /** @param text 1..255 UTF-8 bytes once encoded. @param what Field name. @returns This writer. */
  str8(text: string, what: string): this {
    // A lone surrogate would be encoded as U+FFFD and not decode back to the same string.
    if (!text.isWellFormed()) throw new RangeError(`Invalid ${what}: not well-formed Unicode`);
    const raw = utf8.encode(text);
    if (raw.length === 0 || raw.length > 255) {
      throw new RangeError(`Invalid ${what}: ${raw.length} UTF-8 bytes is outside 1..255`);
    }
    return this.u8(raw.length).bytes(raw, what);
  }

  /** @returns A view of the bytes written so far. */
  view(): Uint8Array<ArrayBuffer> {
    return this.#buf.subarray(0, this.#pos);
  }

  /** @returns The bytes written, in a buffer of their own. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#pos === this.#buf.length ? this.#buf : this.#buf.slice(0, this.#pos);
  }
}

/** Refuse, with a `RangeError`, an inner datagram that would not decode. */
export function checkInner(inner: Uint8Array): void {
  try {
    decodeInner(inner.slice());
  } catch (err) {
    throw new RangeError(`Invalid inner: ${(err as Error).message}`);
  }
}

/**
 * The bytes an HS1 signature covers: UTF-8 `authchat-hs1/1`, `from` and `to` as str8, then `eph`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hs1SignedBytes } from "./datagram.ts";
 * assert(hs1SignedBytes("a", "b", new Uint8Array(32)).length === 14 + 2 + 2 + 32);
 * ```
 *
 * @param from Initiator's user key.
 * @param to Responder's user key.
 * @param eph Initiator's 32-byte ephemeral key.
 * @returns The bytes to sign or verify.
 * @throws {RangeError} When a field is out of range.
 */
export function hs1SignedBytes(from: string, to: string, eph: Uint8Array): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(null).bytes(HS1_LABEL, "label").str8(from, "from").str8(to, "to")
    .bytes(eph, "ephemeral key", 32).finish();
}

/**
 * The bytes an HS2 signature covers: UTF-8 `authchat-hs2/1`, `from` and `to` as str8, then `ephInit`
 * and `ephResp`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hs2SignedBytes } from "./datagram.ts";
 * const e = new Uint8Array(32);
 * assert(hs2SignedBytes("b", "a", e, e).length === 14 + 2 + 2 + 64);
 * ```
 *
 * @param from Responder's user key.
 * @param to Initiator's user key.
 * @param ephInit Initiator's 32-byte ephemeral key.
 * @param ephResp Responder's 32-byte ephemeral key.
 * @returns The bytes to sign or verify.
 * @throws {RangeError} When a field is out of range.
 */
export function hs2SignedBytes(
  from: string,
  to: string,
  ephInit: Uint8Array,
  ephResp: Uint8Array,
): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(null).bytes(HS2_LABEL, "label").str8(from, "from").str8(to, "to")
    .bytes(ephInit, "initiator ephemeral key", 32).bytes(ephResp, "responder ephemeral key", 32).finish();
}
