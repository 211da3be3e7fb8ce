/**
 * The first datagrams of a UDP session (docs/PROTOCOL.md §20.1): `INIT`, client to server, always exactly
 * {@linkcode INIT_BYTES} long, and `RETRY`, the server's stateless answer carrying a cookie and a proof-of-work
 * difficulty. Pure byte splitting and joining: the cookie's MAC and the puzzle live in `lib/crypto`.
 *
 * @module
 */

import { DATAGRAM_VERSION, MAGIC, MAX_DATAGRAM } from "./datagram.ts";

/** Type byte of `INIT`. */
export const INIT_TYPE = 0x30;
/** Type byte of `RETRY`. */
export const RETRY_TYPE = 0x31;
/** Every `INIT` is exactly this long (padded with zeros), so a server may answer it with up to as many bytes. */
export const INIT_BYTES: number = MAX_DATAGRAM;
/** The UDP session protocol version an `INIT` carries. */
export const UDP_SESSION_VERSION = 1;
/** Bytes of `client_random`, `client_share` and the `RETRY`'s echo of `client_random`. */
export const RANDOM_BYTES = 32;
/** Bytes of `client_share` (an X25519 public key). */
export const SHARE_BYTES = 32;
/** Bytes of `pow_nonce`. */
export const POW_NONCE_BYTES = 8;
/** Longest cookie the format carries (its length is one byte). */
export const MAX_COOKIE_BYTES = 255;
/** Offset of `client_random` in an `INIT` (right after the prefix and `version`). */
export const INIT_RANDOM_OFFSET = 4;
/** Offset of `client_share` in an `INIT`. */
export const INIT_SHARE_OFFSET: number = INIT_RANDOM_OFFSET + RANDOM_BYTES;
/** Offset of the cookie's length byte in an `INIT`; every byte before it is what a cookie binds. */
export const INIT_COOKIE_OFFSET: number = INIT_SHARE_OFFSET + SHARE_BYTES;

/** What was wrong with a datagram, stable for counting and tests. */
export type UdpInitFormatCode =
  | "length"
  | "prefix"
  | "type"
  | "version"
  | "truncated"
  | "trailing"
  | "padding"
  | "field";

/** A malformed `INIT` or `RETRY` (decoding), or a field out of range (encoding). */
export class UdpInitFormatError extends RangeError {
  /** What was wrong. */
  readonly code: UdpInitFormatCode;

  /**
   * Make the error.
   *
   * @param code What was wrong.
   * @param message Sentence case, detail after a colon.
   */
  constructor(code: UdpInitFormatCode, message: string) {
    super(message);
    this.name = "UdpInitFormatError";
    this.code = code;
  }
}

/** A decoded `INIT`. Byte fields are views into a private copy of the datagram. */
export interface InitDatagram {
  /** The UDP session protocol version, {@linkcode UDP_SESSION_VERSION}. */
  version: number;
  /** 32 random bytes chosen by the client, the same in its first `INIT` and its repeat. */
  clientRandom: Uint8Array<ArrayBuffer>;
  /** The client's 32-byte ephemeral X25519 public key. */
  clientShare: Uint8Array<ArrayBuffer>;
  /** The cookie from a `RETRY` (0..255 bytes; empty on the first try). */
  cookie: Uint8Array<ArrayBuffer>;
  /** 8 bytes: the proof of work, all zero when none was asked. */
  powNonce: Uint8Array<ArrayBuffer>;
  /** The bytes a cookie binds: everything before the cookie's length byte (prefix, version, random, share). */
  bound: Uint8Array<ArrayBuffer>;
}

/** A decoded `RETRY`. Byte fields are views into a private copy of the datagram. */
export interface RetryDatagram {
  /** The `client_random` of the `INIT` answered, so a client ignores a `RETRY` made for another. */
  echo: Uint8Array<ArrayBuffer>;
  /** The cookie to send back (1..255 bytes), opaque to the client. */
  cookie: Uint8Array<ArrayBuffer>;
  /** Leading zero bits asked of SHA-256(cookie ‖ pow_nonce); 0 means no proof of work. */
  difficulty: number;
}

function fail(code: UdpInitFormatCode, message: string): never {
  throw new UdpInitFormatError(code, message);
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

function checkPrefix(bytes: Uint8Array, type: number, kind: string): void {
  if (bytes.length < 3) fail("truncated", `Truncated ${kind}: ${bytes.length} bytes`);
  if (bytes[0] !== MAGIC || bytes[1] !== DATAGRAM_VERSION) {
    fail("prefix", `Bad ${kind}: prefix ${hex(bytes[0]!)} ${hex(bytes[1]!)}`);
  }
  if (bytes[2] !== type) fail("type", `Bad ${kind}: type ${hex(bytes[2]!)} is not ${hex(type)}`);
}

function checkField(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) fail("field", `Invalid ${what}: must be ${length} bytes, got ${bytes.length}`);
}

function checkCookie(cookie: Uint8Array, min: number): void {
  if (cookie.length < min || cookie.length > MAX_COOKIE_BYTES) {
    fail("field", `Invalid cookie: ${cookie.length} bytes is outside ${min}..${MAX_COOKIE_BYTES}`);
  }
}

/**
 * Encode an `INIT`, padded with zeros to exactly {@linkcode INIT_BYTES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeInit, INIT_BYTES } from "./udp_init.ts";
 * const init = encodeInit({ clientRandom: new Uint8Array(32), clientShare: new Uint8Array(32) });
 * assert(init.length === INIT_BYTES && init[2] === 0x30);
 * ```
 *
 * @param fields 32-byte `clientRandom` and `clientShare`; `cookie` (0..255 bytes, default empty) and 8-byte
 *   `powNonce` (default zero; must be zero without a cookie).
 * @returns The datagram.
 * @throws {UdpInitFormatError} `field` when a field is out of range.
 */
export function encodeInit(fields: {
  clientRandom: Uint8Array;
  clientShare: Uint8Array;
  cookie?: Uint8Array;
  powNonce?: Uint8Array;
}): Uint8Array<ArrayBuffer> {
  const cookie = fields.cookie ?? new Uint8Array(0);
  const powNonce = fields.powNonce ?? new Uint8Array(POW_NONCE_BYTES);
  checkField(fields.clientRandom, RANDOM_BYTES, "client_random");
  checkField(fields.clientShare, SHARE_BYTES, "client_share");
  checkCookie(cookie, 0);
  checkField(powNonce, POW_NONCE_BYTES, "pow_nonce");
  if (cookie.length === 0 && powNonce.some((b) => b !== 0)) {
    fail("field", "Invalid pow_nonce: must be zero without a cookie");
  }
  const out = new Uint8Array(INIT_BYTES);
  out.set([MAGIC, DATAGRAM_VERSION, INIT_TYPE, UDP_SESSION_VERSION]);
  out.set(fields.clientRandom, INIT_RANDOM_OFFSET);
  out.set(fields.clientShare, INIT_SHARE_OFFSET);
  out[INIT_COOKIE_OFFSET] = cookie.length;
  out.set(cookie, INIT_COOKIE_OFFSET + 1);
  out.set(powNonce, INIT_COOKIE_OFFSET + 1 + cookie.length);
  return out;
}

/** The offset of the first non-zero byte of `bytes` from `from` on, or -1. Reads whole words where aligned. */
function firstNonZero(bytes: Uint8Array, from: number): number {
  let i = from;
  // Byte by byte up to the buffer's next 4-byte boundary (not with `& ~3`: 32-bit, so wrong past 2 GiB).
  const wordsAt = i + (4 - (bytes.byteOffset + i) % 4) % 4;
  for (; i < wordsAt; i++) {
    if (i >= bytes.length) return -1;
    if (bytes[i] !== 0) return i;
  }
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, (bytes.length - i) >>> 2);
  for (let w = 0; w < words.length; w++) {
    if (words[w] !== 0) {
      // The word holds it: find the byte.
      for (let j = i + 4 * w;; j++) if (bytes[j] !== 0) return j;
    }
  }
  for (i += 4 * words.length; i < bytes.length; i++) if (bytes[i] !== 0) return i;
  return -1;
}

/**
 * Decode an `INIT`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeInit, encodeInit } from "./udp_init.ts";
 * const cookie = new Uint8Array([1, 2, 3]);
 * const init = decodeInit(encodeInit({ clientRandom: new Uint8Array(32), clientShare: new Uint8Array(32), cookie }));
 * assert(init.cookie.length === 3 && init.bound.length === 68);
 * ```
 *
 * @param bytes One received datagram. Its fields are copied (not its padding); the result's fields are views
 *   into the copy.
 * @returns The `INIT`.
 * @throws {UdpInitFormatError} `length` unless exactly {@linkcode INIT_BYTES}; `prefix`, `type`; `version`
 *   for another session version; `padding` when a byte after `pow_nonce` is not zero; `field` for a
 *   non-zero `pow_nonce` without a cookie. Nothing else is ever thrown.
 */
export function decodeInit(bytes: Uint8Array): InitDatagram {
  if (bytes.length !== INIT_BYTES) fail("length", `Bad INIT: ${bytes.length} bytes, must be ${INIT_BYTES}`);
  checkPrefix(bytes, INIT_TYPE, "INIT");
  const version = bytes[3]!;
  if (version !== UDP_SESSION_VERSION) fail("version", `Bad INIT: version ${version} is not supported`);
  const cookieLength = bytes[INIT_COOKIE_OFFSET]!;
  const cookieAt = INIT_COOKIE_OFFSET + 1;
  // At most 69 + 255 + 8 = 332 bytes, far inside the 1200: an INIT of the right length is never truncated.
  const nonceAt = cookieAt + cookieLength;
  const padAt = nonceAt + POW_NONCE_BYTES;
  const nonZero = firstNonZero(bytes, padAt);
  if (nonZero !== -1) {
    fail("padding", `Bad INIT: padding byte at offset ${nonZero} is ${hex(bytes[nonZero]!)}`);
  }
  // Only the fields are copied: a server answers floods of these, and the padding is most of each.
  const buf = bytes.slice(0, padAt);
  const cookie = buf.subarray(cookieAt, nonceAt);
  const powNonce = buf.subarray(nonceAt, padAt);
  if (cookieLength === 0 && powNonce.some((b) => b !== 0)) {
    fail("field", "Bad INIT: pow_nonce is not zero without a cookie");
  }
  return {
    version,
    clientRandom: buf.subarray(INIT_RANDOM_OFFSET, INIT_SHARE_OFFSET),
    clientShare: buf.subarray(INIT_SHARE_OFFSET, INIT_COOKIE_OFFSET),
    cookie,
    powNonce,
    bound: buf.subarray(0, INIT_COOKIE_OFFSET),
  };
}

/**
 * Encode a `RETRY`: the prefix, `echo[32]`, `cookie` (length byte, then 1..255 bytes), `difficulty:u8`. Never
 * padded: at most 3 + 32 + 1 + 255 + 1 = 292 bytes, far less than the `INIT` it answers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRetry } from "./udp_init.ts";
 * const retry = encodeRetry({ echo: new Uint8Array(32), cookie: new Uint8Array(29), difficulty: 0 });
 * assert(retry.length === 3 + 32 + 1 + 29 + 1);
 * ```
 *
 * @param fields 32-byte `echo` (the answered INIT's `client_random`), `cookie` (1..255 bytes), `difficulty`
 *   (0..255).
 * @returns The datagram.
 * @throws {UdpInitFormatError} `field` when a field is out of range.
 */
export function encodeRetry(
  fields: { echo: Uint8Array; cookie: Uint8Array; difficulty: number },
): Uint8Array<ArrayBuffer> {
  checkField(fields.echo, RANDOM_BYTES, "echo");
  checkCookie(fields.cookie, 1);
  const { difficulty } = fields;
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 255) {
    fail("field", `Invalid difficulty: ${difficulty} is not a u8`);
  }
  const out = new Uint8Array(3 + RANDOM_BYTES + 1 + fields.cookie.length + 1);
  out.set([MAGIC, DATAGRAM_VERSION, RETRY_TYPE]);
  out.set(fields.echo, 3);
  out[3 + RANDOM_BYTES] = fields.cookie.length;
  out.set(fields.cookie, 4 + RANDOM_BYTES);
  out[out.length - 1] = difficulty;
  return out;
}

/**
 * Decode a `RETRY`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRetry, encodeRetry } from "./udp_init.ts";
 * const retry = decodeRetry(encodeRetry({ echo: new Uint8Array(32), cookie: new Uint8Array(29), difficulty: 12 }));
 * assert(retry.difficulty === 12 && retry.cookie.length === 29);
 * ```
 *
 * @param bytes One received datagram. It is copied; the result's fields are views into the copy.
 * @returns The `RETRY`.
 * @throws {UdpInitFormatError} `length` above {@linkcode MAX_DATAGRAM}; `prefix`, `type`; `truncated` when a
 *   field runs past the end; `field` for an empty cookie; `trailing` for bytes after `difficulty`. Nothing
 *   else is ever thrown.
 */
export function decodeRetry(bytes: Uint8Array): RetryDatagram {
  if (bytes.length > MAX_DATAGRAM) {
    fail("length", `Bad RETRY: ${bytes.length} bytes exceeds ${MAX_DATAGRAM}`);
  }
  checkPrefix(bytes, RETRY_TYPE, "RETRY");
  const buf = bytes.slice();
  const lengthAt = 3 + RANDOM_BYTES;
  if (buf.length <= lengthAt) fail("truncated", `Truncated RETRY: ${buf.length} bytes, no cookie length`);
  const cookieLength = buf[lengthAt]!;
  if (cookieLength === 0) fail("field", "Bad RETRY: empty cookie");
  const difficultyAt = lengthAt + 1 + cookieLength;
  if (buf.length <= difficultyAt) {
    fail(
      "truncated",
      `Truncated RETRY: ${buf.length} bytes, cookie of ${cookieLength} and difficulty need more`,
    );
  }
  if (buf.length > difficultyAt + 1) {
    fail("trailing", `Bad RETRY: ${buf.length - difficultyAt - 1} trailing bytes`);
  }
  return {
    echo: buf.subarray(3, lengthAt),
    cookie: buf.subarray(lengthAt + 1, difficultyAt),
    difficulty: buf[difficultyAt]!,
  };
}
