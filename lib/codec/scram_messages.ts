/**
 * The four SCRAM message strings of RFC 5802 §7, parsed strictly and formatted
 * verbatim. Failures are `BAD_SCRAM` protocol errors carrying the RFC's
 * `server-error` value in `details.scram`.
 *
 * @module
 */

import { decodeBase64, encodeBase64 } from "./base64.ts";
import { ProtocolError } from "./protocol_error.ts";

/** The channel binding type of TLS (RFC 5929), the default. */
export const CHANNEL_BINDING_TYPE = "tls-server-end-point";

/** Every channel binding type authchat speaks: TLS's, and the UDP session's (docs/PROTOCOL.md §20.9). */
export const CHANNEL_BINDING_TYPES = [CHANNEL_BINDING_TYPE, "authchat-udp-exporter"] as const;

/** One of {@linkcode CHANNEL_BINDING_TYPES}: which binding a transport offers. */
export type ChannelBindingType = typeof CHANNEL_BINDING_TYPES[number];

/** `n`: client does not support binding; `y`: client does, thinks the server does not; `p`: binding in use. */
export type CbindFlag = "n" | "y" | "p";

/** A parsed client-first-message. */
export interface ClientFirst {
  /** The gs2-header, including its final comma, verbatim. */
  gs2Header: string;
  /** Channel binding flag. */
  cbindFlag: CbindFlag;
  /** The cb-name when the flag is `p`. */
  cbName?: string;
  /** client-first-message-bare, verbatim. */
  bare: string;
  /** Username with `=2C`/`=3D` decoded (not yet SASLprepped). */
  username: string;
  /** Client nonce. */
  nonce: string;
}

/** A parsed server-first-message. */
export interface ServerFirst {
  /** Client nonce followed by server nonce. */
  nonce: string;
  /** Salt bytes. */
  salt: Uint8Array<ArrayBuffer>;
  /** PBKDF2 iteration count. */
  iterations: number;
}

/** A parsed client-final-message. */
export interface ClientFinal {
  /** Decoded `c=` value: gs2-header followed by channel binding data. */
  channelBinding: Uint8Array<ArrayBuffer>;
  /** Combined nonce. */
  nonce: string;
  /** Decoded ClientProof. */
  proof: Uint8Array<ArrayBuffer>;
  /** client-final-message-without-proof, verbatim. */
  withoutProof: string;
}

/** A parsed server-final-message: a verifier or an error. */
export type ServerFinal = { verifier: Uint8Array<ArrayBuffer>; error?: undefined } | {
  error: string;
  verifier?: undefined;
};

const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const CB_NAME = /^[A-Za-z0-9.-]+$/;
const ATTRIBUTE = /^[A-Za-z]=/;
/** Longest client nonce; the server appends 32 characters, and combined nonces may be 512. */
const MAX_CLIENT_NONCE = 256;
const MAX_NONCE = 512;

function bad(message: string, scram = "invalid-encoding"): never {
  throw new ProtocolError("BAD_SCRAM", message, { scram });
}

/**
 * Escape a username for the `n=` attribute (`,` → `=2C`, `=` → `=3D`).
 *
 * @param name A SASLprepped name.
 * @returns The saslname.
 */
export function escapeSaslName(name: string): string {
  return name.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/**
 * Undo {@linkcode escapeSaslName}; any other `=` sequence is invalid.
 *
 * @param text A saslname.
 * @returns The name.
 * @throws {ProtocolError} `BAD_SCRAM` with `invalid-username-encoding`.
 */
export function unescapeSaslName(text: string): string {
  if (/=(?!2C|3D)/.test(text)) {
    bad("Invalid username encoding: '=' must be followed by 2C or 3D", "invalid-username-encoding");
  }
  return text.replaceAll("=2C", ",").replaceAll("=3D", "=");
}

function attribute(part: string | undefined, name: string, what: string): string {
  if (part === undefined || !part.startsWith(`${name}=`)) {
    bad(`Malformed ${what}: expected attribute ${name}=`);
  }
  return part.slice(2);
}

function checkNonce(nonce: string, max = MAX_NONCE): string {
  if (!PRINTABLE.test(nonce)) bad("Malformed nonce: printable characters other than ',' required");
  if (nonce.length > max) bad(`Malformed nonce: longer than ${max} characters`);
  return nonce;
}

function checkExtensions(parts: string[], what: string): void {
  for (const part of parts) {
    if (!ATTRIBUTE.test(part)) bad(`Malformed ${what}: bad attribute ${JSON.stringify(part.slice(0, 16))}`);
  }
}

/**
 * Parse a client-first-message (RFC 5802 §7).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseClientFirst } from "./scram_messages.ts";
 * const first = parseClientFirst("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
 * assert(first.username === "user" && first.bare === "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
 * ```
 *
 * @param text The message.
 * @returns Its parts.
 * @throws {ProtocolError} `BAD_SCRAM`, with `extensions-not-supported` for `m=`.
 */
export function parseClientFirst(text: string): ClientFirst {
  const flagEnd = text.indexOf(",");
  const authzEnd = flagEnd < 0 ? -1 : text.indexOf(",", flagEnd + 1);
  if (authzEnd < 0) bad("Malformed client-first-message: missing gs2 header");
  const flag = text.slice(0, flagEnd);
  const authzid = text.slice(flagEnd + 1, authzEnd);
  let cbindFlag: CbindFlag;
  let cbName: string | undefined;
  if (flag === "n" || flag === "y") cbindFlag = flag;
  else if (flag.startsWith("p=") && CB_NAME.test(flag.slice(2))) {
    cbindFlag = "p";
    cbName = flag.slice(2);
  } else bad("Malformed client-first-message: bad channel binding flag");
  if (authzid !== "") bad("Authorization identity is not supported", "other-error");
  const bare = text.slice(authzEnd + 1);
  const parts = bare.split(",");
  if (parts[0]?.startsWith("m=")) bad("Mandatory extension is not supported", "extensions-not-supported");
  const username = unescapeSaslName(attribute(parts[0], "n", "client-first-message"));
  if (username.length === 0) {
    bad("Malformed client-first-message: empty username", "invalid-username-encoding");
  }
  const nonce = checkNonce(attribute(parts[1], "r", "client-first-message"), MAX_CLIENT_NONCE);
  checkExtensions(parts.slice(2), "client-first-message");
  const gs2Header = text.slice(0, authzEnd + 1);
  return cbName === undefined
    ? { gs2Header, cbindFlag, bare, username, nonce }
    : { gs2Header, cbindFlag, cbName, bare, username, nonce };
}

/**
 * Build a gs2-header.
 *
 * @param flag The channel binding flag.
 * @param type The channel binding type, with `p` (default `tls-server-end-point`).
 * @returns `n,,`, `y,,` or `p=<type>,,`.
 */
export function gs2Header(flag: CbindFlag, type: ChannelBindingType = CHANNEL_BINDING_TYPE): string {
  return flag === "p" ? `p=${type},,` : `${flag},,`;
}

/**
 * Format a client-first-message.
 *
 * @param username SASLprepped username.
 * @param options Nonce, channel binding flag and type (default `tls-server-end-point`).
 * @returns The message.
 */
export function formatClientFirst(
  username: string,
  options: { nonce: string; flag: CbindFlag; bindingType?: ChannelBindingType },
): string {
  return `${gs2Header(options.flag, options.bindingType)}n=${escapeSaslName(username)},r=${options.nonce}`;
}

/**
 * Format a server-first-message.
 *
 * @param nonce Combined nonce.
 * @param options Salt and iteration count.
 * @returns The message.
 */
export function formatServerFirst(
  nonce: string,
  options: { salt: Uint8Array<ArrayBuffer>; iterations: number },
): string {
  return `r=${nonce},s=${encodeBase64(options.salt)},i=${options.iterations}`;
}

/**
 * Parse a server-first-message.
 *
 * @param text The message.
 * @returns Its parts.
 * @throws {ProtocolError} `BAD_SCRAM`.
 */
export function parseServerFirst(text: string): ServerFirst {
  const parts = text.split(",");
  if (parts[0]?.startsWith("m=")) bad("Mandatory extension is not supported", "extensions-not-supported");
  const nonce = checkNonce(attribute(parts[0], "r", "server-first-message"));
  const salt = decodeBase64(attribute(parts[1], "s", "server-first-message"));
  if (salt === null || salt.length === 0) bad("Malformed server-first-message: salt is not base64");
  const count = attribute(parts[2], "i", "server-first-message");
  if (!/^[1-9][0-9]{0,9}$/.test(count)) bad("Malformed server-first-message: bad iteration count");
  checkExtensions(parts.slice(3), "server-first-message");
  return { nonce, salt, iterations: Number(count) };
}

/**
 * Parse a client-final-message.
 *
 * @param text The message.
 * @returns Its parts.
 * @throws {ProtocolError} `BAD_SCRAM`.
 */
export function parseClientFinal(text: string): ClientFinal {
  const proofAt = text.lastIndexOf(",p=");
  if (proofAt < 0) bad("Malformed client-final-message: missing proof");
  const withoutProof = text.slice(0, proofAt);
  const parts = withoutProof.split(",");
  const channelBinding = decodeBase64(attribute(parts[0], "c", "client-final-message"));
  if (channelBinding === null) bad("Malformed client-final-message: channel binding is not base64");
  const nonce = checkNonce(attribute(parts[1], "r", "client-final-message"));
  checkExtensions(parts.slice(2), "client-final-message");
  const proof = decodeBase64(text.slice(proofAt + 3));
  if (proof === null) bad("Malformed client-final-message: proof is not base64");
  return { channelBinding, nonce, proof, withoutProof };
}

/**
 * Format a client-final-message-without-proof.
 *
 * @param channelBinding gs2-header bytes followed by binding data.
 * @param nonce Combined nonce.
 * @returns The message without its proof.
 */
export function formatClientFinalWithoutProof(
  channelBinding: Uint8Array<ArrayBuffer>,
  nonce: string,
): string {
  return `c=${encodeBase64(channelBinding)},r=${nonce}`;
}

/**
 * Parse a server-final-message.
 *
 * @param text The message.
 * @returns The verifier or the server's error value.
 * @throws {ProtocolError} `BAD_SCRAM`.
 */
export function parseServerFinal(text: string): ServerFinal {
  const first = text.split(",")[0] ?? "";
  if (first.startsWith("e=")) {
    const error = first.slice(2);
    if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(error)) bad("Malformed server-final-message: bad error value");
    return { error };
  }
  const verifier = decodeBase64(attribute(first, "v", "server-final-message"));
  if (verifier === null) bad("Malformed server-final-message: verifier is not base64");
  return { verifier };
}
