/**
 * Packet layouts of the reliable channel (docs in `reliable_channel.ts`): DATA `0x01 seq:u32 flags:u8
 * payload` and ACK `0x02 cum:u32 sack:u64`, integers big-endian.
 *
 * @module
 */

/** Kind byte of a DATA packet. */
export const DATA_PACKET = 0x01;
/** Kind byte of an ACK packet. */
export const ACK_PACKET = 0x02;
/** Bytes before a DATA payload: kind, sequence number, flags. */
export const DATA_HEADER_BYTES = 6;
/** Bytes of an ACK packet: kind, cumulative sequence number, 64-bit SACK bitmap. */
export const ACK_BYTES = 13;
/** DATA flag bit: this fragment ends its message. */
export const LAST_FRAGMENT = 0x01;

/**
 * A DATA packet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeDataPacket } from "./_reliable_packets.ts";
 * const packet = encodeDataPacket(258, true, new Uint8Array([9]));
 * assert(packet.join() === "1,0,0,1,2,1,9");
 * ```
 *
 * @param seq Sequence number (u32).
 * @param last Whether the fragment ends its message.
 * @param payload Fragment bytes (copied).
 * @returns The packet.
 */
export function encodeDataPacket(seq: number, last: boolean, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(DATA_HEADER_BYTES + payload.length);
  out[0] = DATA_PACKET;
  writeU32(out, 1, seq);
  out[5] = last ? LAST_FRAGMENT : 0;
  out.set(payload, DATA_HEADER_BYTES);
  return out;
}

/**
 * An ACK packet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeAckPacket } from "./_reliable_packets.ts";
 * const packet = encodeAckPacket(5, 0, 0b101);
 * assert(packet.join() === "2,0,0,0,5,0,0,0,0,0,0,0,5");
 * ```
 *
 * @param cum Next sequence number expected.
 * @param sackHigh Bits 32..63 of the SACK bitmap.
 * @param sackLow Bits 0..31 of the SACK bitmap (bit i: `cum + 1 + i` was received).
 * @returns The packet.
 */
export function encodeAckPacket(cum: number, sackHigh: number, sackLow: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(ACK_BYTES);
  out[0] = ACK_PACKET;
  writeU32(out, 1, cum);
  writeU32(out, 5, sackHigh);
  writeU32(out, 9, sackLow);
  return out;
}

/**
 * Which kind a packet is, after checking its length and reserved bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ACK_PACKET, encodeAckPacket, packetKind } from "./_reliable_packets.ts";
 * assert(packetKind(encodeAckPacket(0, 0, 0), 1100) === ACK_PACKET);
 * assert(packetKind(new Uint8Array([1, 0, 0]), 1100) === 0);
 * ```
 *
 * @param packet Received bytes.
 * @param maxPacket Largest acceptable packet.
 * @returns {@linkcode DATA_PACKET}, {@linkcode ACK_PACKET}, or 0 when malformed.
 */
export function packetKind(packet: Uint8Array, maxPacket: number): number {
  if (packet[0] === DATA_PACKET) {
    const ok = packet.length >= DATA_HEADER_BYTES && packet.length <= maxPacket &&
      (packet[5]! & ~LAST_FRAGMENT) === 0;
    return ok ? DATA_PACKET : 0;
  }
  if (packet[0] === ACK_PACKET) return packet.length === ACK_BYTES ? ACK_PACKET : 0;
  return 0;
}

/**
 * A big-endian u32; the caller has checked the bounds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readU32 } from "./_reliable_packets.ts";
 * assert(readU32(new Uint8Array([0, 255, 255, 255, 255]), 1) === 4294967295);
 * ```
 *
 * @param bytes Source.
 * @param at Offset of the first byte.
 * @returns The value, 0..2^32 - 1.
 */
export function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}
