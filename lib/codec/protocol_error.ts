/**
 * The one error family a peer sees. Every `ProtocolError` carries a stable
 * `code` (documented in docs/PROTOCOL.md) and a human message.
 *
 * @module
 */

/** Stable error codes carried in `ERROR` frames. Never renamed, only added to. */
export const ERROR_CODES = [
  "FRAME_TOO_LARGE",
  "BAD_FRAME",
  "BAD_ENCODING",
  "BAD_JSON",
  "BAD_MESSAGE",
  "UNKNOWN_COMMAND",
  "UNSUPPORTED_VERSION",
  "OUT_OF_ORDER",
  "NOT_LOGGED_IN",
  "UNSUPPORTED_MECHANISM",
  "BAD_SCRAM",
  "CHANNEL_BINDING",
  "AUTH_FAILED",
  "RATE_LIMITED",
  "INVALID_USERNAME",
  "USER_EXISTS",
  "PASSWORD_POLICY",
  "CONFIDENTIALITY_REQUIRED",
  "SEAL_INVALID",
  "TOO_MANY_CONNECTIONS",
  "UNKNOWN_USER",
  "USER_OFFLINE",
  "IDENTITY_EXISTS",
  "BAD_DATAGRAM",
  "INTERNAL",
  "PASSWORD_CHANGE_REQUIRED",
  "UNAVAILABLE",
] as const;

/** One of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

/** Extra, code-specific fields an error frame may carry. */
export interface ProtocolErrorDetails {
  /** SCRAM `server-error` value (`invalid-proof`, …) when the error ends a SCRAM exchange. */
  scram?: string;
  /** Milliseconds to wait before retrying (`RATE_LIMITED`). */
  retryAfterMs?: number;
  /** Machine-readable refusal reason (`PASSWORD_POLICY`, `INVALID_USERNAME`). */
  reason?: string;
  /** The server closes the connection after sending this error. */
  fatal?: boolean;
}

/**
 * An error a peer must see, with a stable code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProtocolError } from "./protocol_error.ts";
 * const err = new ProtocolError("FRAME_TOO_LARGE", "Frame too large: 70000 bytes exceeds 65536");
 * assert(err.code === "FRAME_TOO_LARGE");
 * ```
 */
export class ProtocolError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** Code-specific details. */
  readonly details: ProtocolErrorDetails;

  /**
   * Make a protocol error.
   *
   * @param code The stable error code.
   * @param message Sentence-case human message, detail after a colon.
   * @param details Optional code-specific fields.
   */
  constructor(code: ErrorCode, message: string, details: ProtocolErrorDetails = {}) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.details = details;
  }
}

/**
 * Tell whether a value is a known error code.
 *
 * @param value Any value.
 * @returns `true` when `value` is one of {@linkcode ERROR_CODES}.
 */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * Describe an error for a person: its message, and for protocol errors the code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError, ProtocolError } from "./protocol_error.ts";
 * assert(describeError(new ProtocolError("AUTH_FAILED", "Nope")) === "Nope (AUTH_FAILED)");
 * ```
 *
 * @param err Anything thrown.
 * @returns One line.
 */
export function describeError(err: unknown): string {
  if (err instanceof ProtocolError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
