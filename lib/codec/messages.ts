/**
 * Every protocol message and its schema. A frame's payload is one UTF-8 JSON
 * object with an `op` field; requests may carry an integer `id` that the
 * reply echoes. This is the only place untrusted message bytes become typed
 * values.
 *
 * @module
 */

import { encodeFrame } from "./frame.ts";
import { isErrorCode, ProtocolError } from "./protocol_error.ts";
import type { ErrorCode } from "./protocol_error.ts";
import { array, boolean, integer, literal, object, optional, string } from "./schema.ts";
import type { Infer, Validator } from "./schema.ts";

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;

/** Longest error message sent; longer ones are cut. */
export const MAX_ERROR_MESSAGE = 1024;

/** Largest request id. */
export const MAX_ID = 2 ** 31 - 1;

const id = optional(integer(0, MAX_ID));
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const b64 = (max: number) => string({ max, pattern: BASE64 });
/** Bound on raw user names (and other client text) before SASLprep; the name rules are tighter. */
const secretText = string({ max: 1024 });
/** A SCRAM verifier in PostgreSQL's format (section 4.3); its parts are checked where it is read. */
const verifierText = string({ max: 512 });
const scramText = string({ min: 1, max: 4096 });
const mechanism = string({ min: 1, max: 64 });

/** A secret sealed to the server's RSA-OAEP key (see docs/PROTOCOL.md, "Sealing"). */
export const sealedSchema = object({ key: b64(1024), iv: b64(64), ct: b64(2048) });
/** A sealed secret. */
export type Sealed = Infer<typeof sealedSchema>;

/** An identity private key sealed under the password (docs/PROTOCOL.md, "Identity keys"). */
export const keyBackupSchema = object({
  v: integer(1, 1),
  kdf: literal("argon2id"),
  m: integer(1, 2 ** 31),
  t: integer(1, 2 ** 31),
  p: integer(1, 255),
  salt: b64(64),
  iv: b64(64),
  ct: b64(1024),
});
/** A sealed identity key as carried. */
export type KeyBackupMessage = Infer<typeof keyBackupSchema>;
/** Ed25519 public key: 32 bytes, base64. */
const identityKey = string({ min: 44, max: 44, pattern: BASE64 });
const identitySchema = object({ key: identityKey, backup: keyBackupSchema });
/** Largest number of users in one LIST reply; more come with a cursor. */
export const LIST_PAGE = 200;
const userName = string({ max: 256 });
const listedUser = object({
  user: userName,
  key: optional(identityKey),
  fingerprint: optional(string({ max: 64 })),
}, {
  allowExtra: true,
});

/** A device token (docs/PROTOCOL.md, section 7): base64, room for later versions of the format. */
const deviceToken = b64(256);

/** The UDP rendezvous a session may use (docs/PROTOCOL.md, section 16). */
const udpSchema = object({ port: integer(1, 65535), handle: b64(32), relay_id: integer(0, 2 ** 32 - 1) });

/** The schema of every client → server message, by `op` (docs/PROTOCOL.md, section 2.1). */
export const clientSchemas = {
  HELLO: object({ op: literal("HELLO"), id, version: integer(0, 65535), keepalive: optional(boolean()) }),
  REGISTER: object({
    op: literal("REGISTER"),
    id,
    user: secretText,
    verifier: optional(verifierText),
    sealed: optional(sealedSchema),
    identity: optional(identitySchema),
  }),
  LOGIN: object({
    op: literal("LOGIN"),
    id,
    mechanism,
    data: scramText,
    device_token: optional(deviceToken),
  }),
  PROOF: object({ op: literal("PROOF"), id, data: scramText }),
  IS_LOGGED: object({ op: literal("IS_LOGGED"), id }),
  ACCESS: object({ op: literal("ACCESS"), id }),
  PASSWD: object({
    op: literal("PASSWD"),
    id,
    mechanism,
    data: scramText,
    verifier: optional(verifierText),
    sealed: optional(sealedSchema),
    backup: optional(keyBackupSchema),
  }),
  DELETE: object({ op: literal("DELETE"), id, mechanism, data: scramText }),
  LOGOUT: object({ op: literal("LOGOUT"), id }),
  CLOSE: object({ op: literal("CLOSE"), id }),
  IDENTITY: object({ op: literal("IDENTITY"), id, key: identityKey, backup: keyBackupSchema }),
  LIST: object({ op: literal("LIST"), id, after: optional(secretText) }),
  PEER: object({ op: literal("PEER"), id, user: secretText }),
  PING: object({ op: literal("PING"), id }),
};

/** Names of the commands a client may send. */
export type ClientOp = keyof typeof clientSchemas;
/** Every command a client may send. */
export const CLIENT_OPS = Object.keys(clientSchemas) as ClientOp[];
/** A validated client message. */
export type ClientMessage = { [K in ClientOp]: Infer<typeof clientSchemas[K]> }[ClientOp];
/** The validated client message of one op. */
export type ClientMessageOf<K extends ClientOp> = Infer<typeof clientSchemas[K]>;

const loose = { allowExtra: true };
/** The schema of every server → client message, by `op` (docs/PROTOCOL.md, section 2.2). */
export const serverSchemas = {
  HELLO: object({
    op: literal("HELLO"),
    id,
    server: string({ max: 256 }),
    version: integer(0, 65535),
    versions: array(integer(0, 65535), 16),
    mechanisms: array(string({ max: 64 }), 16),
    confidential: boolean(),
    seal_key: b64(2048),
    seal_nonce: b64(64),
    iterations: integer(1, 2 ** 31 - 1),
    password_min_length: integer(1, 256),
  }, loose),
  CHALLENGE: object({ op: literal("CHALLENGE"), id, data: scramText }, loose),
  REGISTER: object({ op: literal("REGISTER"), id, user: string({ max: 256 }) }, loose),
  LOGIN: object({
    op: literal("LOGIN"),
    id,
    user: string({ max: 256 }),
    data: scramText,
    identity: optional(identitySchema),
    udp: optional(udpSchema),
    must_change_password: optional(boolean()),
    device_token: optional(deviceToken),
  }, loose),
  IS_LOGGED: object({
    op: literal("IS_LOGGED"),
    id,
    logged_in: boolean(),
    user: optional(string({ max: 256 })),
    must_change_password: optional(boolean()),
  }, loose),
  ACCESS: object({
    op: literal("ACCESS"),
    id,
    user: string({ max: 256 }),
    created: string({ max: 64 }),
    last_login: optional(string({ max: 64 })),
    login: string({ max: 64 }),
    resource: string({ max: 4096 }),
  }, loose),
  PASSWD: object({
    op: literal("PASSWD"),
    id,
    data: scramText,
    udp: optional(udpSchema),
    device_token: optional(deviceToken),
  }, loose),
  DELETE: object({ op: literal("DELETE"), id, user: string({ max: 256 }), data: scramText }, loose),
  LOGOUT: object({ op: literal("LOGOUT"), id }, loose),
  CLOSE: object({ op: literal("CLOSE"), id }, loose),
  IDENTITY: object(
    { op: literal("IDENTITY"), id, key: identityKey, fingerprint: string({ max: 64 }) },
    loose,
  ),
  LIST: object(
    { op: literal("LIST"), id, users: array(listedUser, LIST_PAGE), next: optional(userName) },
    loose,
  ),
  PEER: object({
    op: literal("PEER"),
    id,
    user: userName,
    key: identityKey,
    fingerprint: string({ max: 64 }),
    relay_id: integer(0, 2 ** 32 - 1),
    address: string({ max: 64 }),
    port: integer(1, 65535),
  }, loose),
  PONG: object({ op: literal("PONG"), id }, loose),
  PRESENCE: object({
    op: literal("PRESENCE"),
    user: userName,
    state: literal("online", "offline"),
    key: optional(identityKey),
    fingerprint: optional(string({ max: 64 })),
  }, loose),
  ERROR: object({
    op: literal("ERROR"),
    id,
    code: string({ max: 64 }),
    message: string({ max: 4096 }),
    fatal: optional(boolean()),
    scram: optional(string({ max: 256 })),
    reason: optional(string({ max: 64 })),
    retry_after_ms: optional(integer(0, 2 ** 40)),
  }, loose),
  BYE: object({ op: literal("BYE"), code: string({ max: 64 }), reason: string({ max: 4096 }) }, loose),
};

/** Names of the messages a server may send. */
export type ServerOp = keyof typeof serverSchemas;
/** A validated server message. */
export type ServerMessage = { [K in ServerOp]: Infer<typeof serverSchemas[K]> }[ServerOp];
/** The validated server message of one op. */
export type ServerMessageOf<K extends ServerOp> = Infer<typeof serverSchemas[K]>;

/** Why a connection is being ended, carried in `BYE`. */
export type ByeCode =
  | "SHUTDOWN"
  | "AUTH_TIMEOUT"
  | "IDLE_TIMEOUT"
  | "KEEPALIVE_TIMEOUT"
  | "ACCOUNT_DELETED"
  | "PASSWORD_CHANGED"
  | "SERVER_FULL"
  | "TOO_MANY_CONNECTIONS"
  | "UNAVAILABLE";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * First half of decoding: bytes to a JSON object, without looking at fields.
 *
 * @param payload One frame's payload.
 * @returns The parsed object.
 * @throws {ProtocolError} `BAD_ENCODING` (not UTF-8), `BAD_FRAME` (empty), `BAD_JSON`.
 */
export function parseJsonObject(payload: Uint8Array): Record<string, unknown> {
  if (payload.length === 0) {
    throw new ProtocolError("BAD_FRAME", "Empty frame: a message needs a JSON object");
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    throw new ProtocolError("BAD_ENCODING", "Invalid UTF-8 in frame");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof SyntaxError ? err.message : "too deeply nested";
    throw new ProtocolError("BAD_JSON", `Frame is not valid JSON: ${why}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("BAD_JSON", "Frame is not a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * The request id of a parsed but not yet validated message, if it has a valid one.
 *
 * @param raw A parsed object.
 * @returns The id, or `undefined`.
 */
export function peekId(raw: Record<string, unknown>): number | undefined {
  const value = raw.id;
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_ID
    ? value
    : undefined;
}

function validateWith<M>(schemas: Record<string, Validator<unknown>>, raw: Record<string, unknown>): M {
  const op = raw.op;
  if (typeof op !== "string") {
    throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.op: expected a string");
  }
  const schema = Object.hasOwn(schemas, op) ? schemas[op] : undefined;
  if (!schema) {
    const shown = op.length > 32 ? `${op.slice(0, 32)}…` : op;
    throw new ProtocolError("UNKNOWN_COMMAND", `Unknown command: ${JSON.stringify(shown)}`);
  }
  return schema(raw, "msg") as M;
}

/**
 * Second half of decoding on the server: check a parsed object against its command's schema.
 *
 * @param raw Output of {@linkcode parseJsonObject}.
 * @returns The typed message.
 * @throws {ProtocolError} `UNKNOWN_COMMAND` or `BAD_MESSAGE`.
 */
export function validateClientMessage(raw: Record<string, unknown>): ClientMessage {
  return validateWith<ClientMessage>(clientSchemas, raw);
}

/**
 * Decode a frame payload from a client in one step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeClientMessage } from "./messages.ts";
 * const msg = decodeClientMessage(new TextEncoder().encode('{"op":"HELLO","version":1}'));
 * assert(msg.op === "HELLO");
 * ```
 *
 * @param payload One frame's payload.
 * @returns The typed message.
 * @throws {ProtocolError} Any decoding error code.
 */
export function decodeClientMessage(payload: Uint8Array): ClientMessage {
  return validateClientMessage(parseJsonObject(payload));
}

/**
 * Decode a frame payload from a server. Extra fields are tolerated so newer servers stay readable.
 *
 * @param payload One frame's payload.
 * @returns The typed message.
 * @throws {ProtocolError} Any decoding error code.
 */
export function decodeServerMessage(payload: Uint8Array): ServerMessage {
  return validateWith<ServerMessage>(serverSchemas, parseJsonObject(payload));
}

/**
 * Encode any message as one frame.
 *
 * @param message A client or server message.
 * @returns The framed bytes.
 * @throws {RangeError} When the encoded message exceeds the frame cap.
 */
export function encodeMessage(message: ClientMessage | ServerMessage): Uint8Array {
  return encodeFrame(encoder.encode(JSON.stringify(message)));
}

/**
 * Build an `ERROR` message from a protocol error.
 *
 * @param err The error.
 * @param requestId The id of the request it answers, if any.
 * @returns The message.
 */
export function errorMessage(err: ProtocolError, requestId?: number): ServerMessageOf<"ERROR"> {
  // Messages may quote client input; bound them so every error fits a frame and the client's schema.
  const message = err.message.length > MAX_ERROR_MESSAGE
    ? `${err.message.slice(0, MAX_ERROR_MESSAGE)}…`
    : err.message;
  const msg: ServerMessageOf<"ERROR"> = { op: "ERROR", code: err.code, message };
  if (requestId !== undefined) msg.id = requestId;
  if (err.details.fatal) msg.fatal = true;
  if (err.details.scram !== undefined) msg.scram = err.details.scram;
  if (err.details.reason !== undefined) msg.reason = err.details.reason;
  if (err.details.retryAfterMs !== undefined) msg.retry_after_ms = err.details.retryAfterMs;
  return msg;
}

/**
 * Turn a received `ERROR` message back into a {@linkcode ProtocolError}.
 *
 * @param msg The message.
 * @returns The error (unknown codes become `INTERNAL`, keeping the text).
 */
export function errorFromMessage(msg: ServerMessageOf<"ERROR">): ProtocolError {
  const code: ErrorCode = isErrorCode(msg.code) ? msg.code : "INTERNAL";
  const details: Record<string, unknown> = {};
  if (msg.fatal) details.fatal = true;
  if (msg.scram !== undefined) details.scram = msg.scram;
  if (msg.reason !== undefined) details.reason = msg.reason;
  if (msg.retry_after_ms !== undefined) details.retryAfterMs = msg.retry_after_ms;
  return new ProtocolError(code, msg.message, details);
}
