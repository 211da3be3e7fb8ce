/**
 * The header every direct message carries inside its encryption (docs/PROTOCOL.md, "Direct messages"): the
 * sender link's random instance id and the message's number on that link, so a receiver can drop a message
 * it already delivered when another session carries it again.
 *
 * @module
 */

/** Bytes before the message: instance[8] number:u64. */
export const MESSAGE_HEADER_BYTES = 16;
/** Bytes of a sender instance id. */
export const INSTANCE_BYTES = 8;

/** A direct message as received: who numbered it, its number, and its text bytes. */
export interface NumberedMessage {
  /** The sender link's instance id, as hex. */
  instance: string;
  /** 1, 2, 3, … per sender instance. */
  number: number;
  /** The message itself (a view into the received bytes). */
  body: Uint8Array<ArrayBuffer>;
}

/**
 * Put the header before a message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNumbered, encodeNumbered } from "./_message_header.ts";
 * const bytes = encodeNumbered(new Uint8Array(8).fill(1), 5, new TextEncoder().encode("hi"));
 * assert(bytes.length === 18 && decodeNumbered(bytes)?.number === 5);
 * ```
 *
 * @param instance The sender link's 8-byte instance id.
 * @param number The message's number on that link, 1 to 2⁵³−1.
 * @param body The message.
 * @returns Header and message.
 * @throws {RangeError} When the instance is not 8 bytes or the number out of range.
 */
export function encodeNumbered(
  instance: Uint8Array,
  number: number,
  body: Uint8Array,
): Uint8Array<ArrayBuffer> {
  if (instance.length !== INSTANCE_BYTES) {
    throw new RangeError(`Instance id must be 8 bytes: ${instance.length}`);
  }
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new RangeError(`Message number out of range: ${number}`);
  }
  const out = new Uint8Array(MESSAGE_HEADER_BYTES + body.length);
  out.set(instance);
  new DataView(out.buffer).setBigUint64(INSTANCE_BYTES, BigInt(number));
  out.set(body, MESSAGE_HEADER_BYTES);
  return out;
}

/**
 * Split a received message into header and body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNumbered } from "./_message_header.ts";
 * assert(decodeNumbered(new Uint8Array(15)) === null);
 * ```
 *
 * @param bytes A message as the reliable channel delivered it.
 * @returns The parts, or `null` when it is shorter than the header or its number is 0 or above 2⁵³−1.
 */
export function decodeNumbered(bytes: Uint8Array<ArrayBuffer>): NumberedMessage | null {
  if (bytes.length < MESSAGE_HEADER_BYTES) return null;
  const big = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getBigUint64(INSTANCE_BYTES);
  if (big < 1n || big > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return {
    instance: bytes.subarray(0, INSTANCE_BYTES).toHex(),
    number: Number(big),
    body: bytes.subarray(MESSAGE_HEADER_BYTES),
  };
}
