/**
 * Why a connection to a server failed, in words a user can act on: nothing
 * listening, a TLS port reached without `--tls` (or the other way round), a
 * name that does not resolve, a peer that is not an authchat server, a
 * timeout. {@linkcode openConnection} and the client's first read raise a
 * {@linkcode ConnectError}; {@linkcode describeConnectFailure} turns whatever
 * a connection attempt threw into the one line the CLI prints.
 *
 * @module
 */

import { describeError } from "../codec/protocol_error.ts";
import { tlsRecordKind } from "../codec/tls_record.ts";
import { ConnectionClosedError } from "./_request_channel.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, endpointName } from "./endpoint.ts";
import type { Endpoint } from "./endpoint.ts";

/** What went wrong, in one word. */
export type ConnectFailure =
  /** Nothing listens on the port (connection refused). */
  | "refused"
  /** No connection, handshake or first reply in time. */
  | "timeout"
  /** The host name does not resolve. */
  | "unknown_host"
  /** No route to the host. */
  | "unreachable"
  /** A plain TCP client reached a port that speaks TLS. */
  | "speaks_tls"
  /** A TLS client reached a port that does not speak TLS. */
  | "not_tls"
  /** Something other than an authchat server answered (HTTP, SSH, …). */
  | "not_authchat"
  /** The peer closed the connection before answering. */
  | "closed"
  /** A UDP server asked for a proof of work above this client's cap (docs/PROTOCOL.md 20.3). */
  | "pow_refused";

/** A connection that could not be made, with what happened and what to do. */
export class ConnectError extends Error {
  /** What went wrong. */
  readonly failure: ConnectFailure;
  /** `host:port` of the server. */
  readonly endpoint: string;
  /** What happened and what to do: the message without its `Cannot connect to HOST:PORT: ` start. */
  readonly explanation: string;

  /**
   * Make the error.
   *
   * @param failure What went wrong.
   * @param endpoint The server.
   * @param explanation What happened and what to do.
   * @param options The error that was seen, as `cause`.
   */
  constructor(
    failure: ConnectFailure,
    endpoint: { host: string; port: number },
    explanation: string,
    options?: ErrorOptions,
  ) {
    super(`Cannot connect to ${endpointName(endpoint)}: ${explanation}`, options);
    this.name = "ConnectError";
    this.failure = failure;
    this.endpoint = endpointName(endpoint);
    this.explanation = explanation;
  }
}

const CHECK_ADDRESS = "check --host and --port";

/** Error codes of `node:tls` when what came back is not a TLS record. */
const NOT_TLS_CODES = new Set([
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_UNKNOWN_PROTOCOL",
  "ERR_SSL_HTTP_REQUEST",
  "ERR_SSL_RECORD_LAYER_FAILURE",
]);
const NOT_TLS_TEXT =
  /wrong version number|packet length too long|unknown protocol|InvalidContentType|corrupt message/i;
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_NODATA", "EAI_FAIL"]);
// Deno.connect reports a failed lookup as a plain Error with the resolver's words.
const DNS_TEXT =
  /failed to lookup address|getaddrinfo|Name or service not known|nodename nor servname|No address associated with hostname|Temporary failure in name resolution/i;
const UNREACHABLE_TEXT = /Network is unreachable|No route to host|ENETUNREACH|EHOSTUNREACH/i;

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Recognise what a failed connect or TLS handshake threw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectErrorFrom } from "./connect_error.ts";
 * const refused = new Deno.errors.ConnectionRefused("Connection refused (os error 111)");
 * const err = connectErrorFrom(refused, { host: "127.0.0.1", port: 1991, tls: false });
 * assert(err?.failure === "refused");
 * ```
 *
 * @param err What `Deno.connect` or `node:tls` threw.
 * @param endpoint Where the client was connecting.
 * @returns The error to show, or `null` when `err` is none of the failures known here.
 */
export function connectErrorFrom(err: unknown, endpoint: Endpoint): ConnectError | null {
  if (err instanceof ConnectError) return err;
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const options = { cause: err };
  if (err instanceof Deno.errors.ConnectionRefused || code === "ECONNREFUSED") {
    return new ConnectError(
      "refused",
      endpoint,
      "nothing is listening there (connection refused): start the server (deno task start, or authchat " +
        `server), or ${CHECK_ADDRESS}`,
      options,
    );
  }
  if (err instanceof Deno.errors.TimedOut || code === "ETIMEDOUT") {
    const seconds = (endpoint.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) / 1000;
    return new ConnectError(
      "timeout",
      endpoint,
      `no answer within ${seconds} s (timed out): ${CHECK_ADDRESS}, and that no firewall drops the connection`,
      options,
    );
  }
  if ((code !== undefined && DNS_CODES.has(code)) || DNS_TEXT.test(message)) {
    return new ConnectError(
      "unknown_host",
      endpoint,
      `unknown host ${endpoint.host} (the name does not resolve): check --host`,
      options,
    );
  }
  if (code === "ENETUNREACH" || code === "EHOSTUNREACH" || UNREACHABLE_TEXT.test(message)) {
    return new ConnectError(
      "unreachable",
      endpoint,
      `no route to the host (${message}): check --host and the network`,
      options,
    );
  }
  if (endpoint.tls && ((code !== undefined && NOT_TLS_CODES.has(code)) || NOT_TLS_TEXT.test(message))) {
    return new ConnectError(
      "not_tls",
      endpoint,
      "it does not speak TLS (a plain TCP authchat port?): drop --tls, or use the TLS port (default 1992)",
      options,
    );
  }
  if (
    err instanceof Deno.errors.ConnectionReset || code === "ECONNRESET" ||
    /socket disconnected before secure TLS connection/i.test(message)
  ) {
    return closedError(endpoint, options);
  }
  return null;
}

/**
 * The peer closed the connection before it answered anything.
 *
 * @param endpoint The server.
 * @param options The error seen, if any.
 * @returns The error to show.
 */
export function closedError(endpoint: { host: string; port: number }, options?: ErrorOptions): ConnectError {
  return new ConnectError(
    "closed",
    endpoint,
    "it closed the connection without answering (not an authchat server, or one refusing this address): " +
      CHECK_ADDRESS,
    options,
  );
}

/** The start of a peer's reply as text, when it is printable ASCII: an HTTP status line, an SSH banner. */
function textStart(bytes: Uint8Array): string | null {
  let end = 0;
  while (end < bytes.length && end < 48 && bytes[end] !== 0x0d && bytes[end] !== 0x0a) {
    const b = bytes[end]!;
    if (b < 0x20 || b > 0x7e) return null;
    end++;
  }
  return end >= 3 ? String.fromCharCode(...bytes.subarray(0, end)) : null;
}

/**
 * Recognise a first reply that is not an authchat frame. An authchat frame starts with a 4-byte length of
 * at most 65536, so its first byte is 0; anything else came from another kind of server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { foreignReplyError } from "./connect_error.ts";
 * const alert = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
 * const err = foreignReplyError(alert, { host: "127.0.0.1", port: 1992, tls: false });
 * assert(err?.message === "Cannot connect to 127.0.0.1:1992: it speaks TLS: add --tls");
 * ```
 *
 * @param first The first bytes the peer sent (one read's worth is enough).
 * @param endpoint Where the client connected.
 * @returns The error to show, or `null` when the bytes may start an authchat frame.
 */
export function foreignReplyError(first: Uint8Array, endpoint: Endpoint): ConnectError | null {
  if (first.length === 0 || first[0] === 0) return null;
  if (!endpoint.tls && tlsRecordKind(first) !== null) {
    return new ConnectError("speaks_tls", endpoint, "it speaks TLS: add --tls");
  }
  const text = textStart(first);
  if (text?.startsWith("HTTP/")) {
    return new ConnectError(
      "not_authchat",
      endpoint,
      "it speaks HTTP, not authchat: check --port (authchat listens on 1991 for TCP and 1992 for TLS by " +
        "default)",
    );
  }
  return new ConnectError(
    "not_authchat",
    endpoint,
    `not an authchat server (it answered ${
      text === null ? "with bytes that are not an authchat frame" : JSON.stringify(text)
    }): ${CHECK_ADDRESS}`,
  );
}

/** The first {@linkcode ConnectError} in an error's chain of causes. */
function findConnectError(err: unknown): ConnectError | null {
  for (let at = err, depth = 0; at !== undefined && at !== null && depth < 8; depth++) {
    if (at instanceof ConnectError) return at;
    at = (at as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * The line to print when connecting failed: `Cannot connect to HOST:PORT: ` and what happened, worded the
 * same for TCP and TLS, with what to do where there is something to do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeConnectFailure } from "./connect_error.ts";
 * const line = describeConnectFailure(
 *   new Deno.errors.ConnectionRefused("Connection refused (os error 111)"),
 *   { host: "127.0.0.1", port: 1991, tls: false },
 * );
 * assert(line.startsWith("Cannot connect to 127.0.0.1:1991: nothing is listening there"));
 * ```
 *
 * @param err What the connection attempt threw (a {@linkcode ConnectError}, or anything else).
 * @param endpoint Where the client was connecting.
 * @returns One line without a trailing period, for `error: ` to go before.
 */
export function describeConnectFailure(err: unknown, endpoint: Endpoint): string {
  const known = findConnectError(err) ?? connectErrorFrom(err, endpoint);
  const start = `Cannot connect to ${endpointName(endpoint)}: `;
  if (known) return start + known.explanation;
  // A silent peer: no reply to HELLO. Other ends (a BYE, bad data) say what happened themselves.
  if (err instanceof ConnectionClosedError && err.cause instanceof Deno.errors.TimedOut) {
    return start + `no answer to HELLO in time (not an authchat server?): ${CHECK_ADDRESS}`;
  }
  return start + describeError(err);
}
