/**
 * What the relay routing puts on the bus: the value of a slot's entry, the value of a user's endpoint
 * entry, and a forwarded datagram. Read back from the bus, each is checked here and anything malformed is
 * `null`, never thrown: another node's bug must not take this one down.
 *
 * @module
 */

import type { RoutedEndpoint } from "../server/relay_routing.ts";
import { SLOTS } from "./relay_slots.ts";

/** Who holds a slot: the node's id and the random id of this hold of it (16 hex digits). */
export interface SlotClaim {
  node: string;
  claim: string;
}

/** A user's newest proven endpoint on one node, under the hold of the slot its relay id is in. */
export interface EndpointRecord extends RoutedEndpoint {
  user: string;
  claim: string;
}

const CLAIM = /^[0-9a-f]{16}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A new random claim id. */
export function newClaim(): string {
  return crypto.getRandomValues(new Uint8Array(8)).toHex();
}

function parseJson(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : null;
  } catch {
    return null;
  }
}

function isU32(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}

/**
 * The bytes of a slot's entry.
 *
 * @param claim The hold.
 * @returns JSON.
 */
export function encodeSlotClaim(claim: SlotClaim): Uint8Array {
  return encoder.encode(JSON.stringify({ node: claim.node, claim: claim.claim }));
}

/**
 * Read a slot's entry.
 *
 * @param bytes The value.
 * @returns The hold, or `null` when malformed.
 */
export function decodeSlotClaim(bytes: Uint8Array): SlotClaim | null {
  const v = parseJson(bytes);
  if (!v || typeof v.node !== "string" || typeof v.claim !== "string" || !CLAIM.test(v.claim)) return null;
  return { node: v.node, claim: v.claim };
}

/**
 * The bytes of a user's endpoint entry.
 *
 * @param record The endpoint.
 * @returns JSON.
 */
export function encodeEndpoint(record: EndpointRecord): Uint8Array {
  const { user, relayId, hostname, port, since, claim } = record;
  return encoder.encode(JSON.stringify({ user, relayId, hostname, port, since, claim }));
}

/**
 * Read a user's endpoint entry.
 *
 * @param bytes The value.
 * @returns The endpoint, or `null` when malformed.
 */
export function decodeEndpoint(bytes: Uint8Array): EndpointRecord | null {
  const v = parseJson(bytes);
  if (
    !v || typeof v.user !== "string" || !isU32(v.relayId) || typeof v.hostname !== "string" ||
    v.hostname === "" || !isU32(v.port) || v.port > 65535 || typeof v.since !== "number" ||
    !Number.isFinite(v.since) || typeof v.claim !== "string" || !CLAIM.test(v.claim)
  ) {
    return null;
  }
  return {
    user: v.user,
    relayId: v.relayId,
    hostname: v.hostname,
    port: v.port,
    since: v.since,
    claim: v.claim,
  };
}

/** A datagram forwarded to the node holding a slot, under the hold the sender saw. */
export interface ForwardMessage {
  /** The hold of the recipient's slot the sender saw: another hold of the slot drops it. */
  claim: string;
  to: number;
  from: number;
  inner: Uint8Array;
}

/** Version byte, claim (8 bytes), to (u32), from (u32). */
const FORWARD_HEADER = 1 + 8 + 4 + 4;
const FORWARD_VERSION = 1;

/**
 * The bytes of a forwarded datagram: version `1`, the claim's 8 bytes, `to` and `from` as big-endian u32,
 * then the peer datagram.
 *
 * @param m The datagram.
 * @returns The message.
 */
export function encodeForward(m: ForwardMessage): Uint8Array {
  const out = new Uint8Array(FORWARD_HEADER + m.inner.length);
  const view = new DataView(out.buffer);
  out[0] = FORWARD_VERSION;
  out.set(Uint8Array.fromHex(m.claim), 1);
  view.setUint32(9, m.to);
  view.setUint32(13, m.from);
  out.set(m.inner, FORWARD_HEADER);
  return out;
}

/**
 * Read a forwarded datagram (its inner datagram is checked by whoever tags it). The inner bytes are
 * copied into a plain `Uint8Array` (a NATS message may be a Node `Buffer` over a shared pool).
 *
 * @param bytes The message.
 * @returns The datagram, or `null` when malformed.
 */
export function decodeForward(bytes: Uint8Array): ForwardMessage | null {
  if (bytes.length <= FORWARD_HEADER || bytes[0] !== FORWARD_VERSION) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    claim: bytes.subarray(1, 9).toHex(),
    to: view.getUint32(9),
    from: view.getUint32(13),
    inner: new Uint8Array(bytes.subarray(FORWARD_HEADER)),
  };
}

/**
 * A slot number read from a key.
 *
 * @param text The key's text.
 * @returns The slot, or `null` when it is not one.
 */
export function parseSlot(text: string): number | null {
  if (!/^(0|[1-9][0-9]{0,3})$/.test(text)) return null;
  const slot = Number(text);
  return slot < SLOTS ? slot : null;
}
