/**
 * The tag of server datagrams (RDV, RDV_ACK, RELAY, RELAYED; docs/PROTOCOL.md,
 * "Datagrams"): HMAC-SHA-256 keyed with the session's 32-byte UDP key,
 * truncated to 16 bytes, over every byte before it.
 *
 * The codec (`lib/codec/datagram.ts`) only lays out bytes: its encoders give
 * the bytes a tag covers and its decoder splits `macInput` and `tag` apart.
 * This module holds the key, computes the tag and checks it in constant time:
 *
 * - {@linkcode importUdpKey}: once per session;
 * - {@linkcode tagDatagram}: `tagDatagram(key, encodeRdv(fields))` is the datagram to send;
 * - {@linkcode verifyDatagram}: on a decoded server datagram, before anything of it is used.
 *
 * It runs on WebCrypto: a tag is made or checked once per rendezvous and relayed datagram, and the
 * server bounds how many checks are under way (docs/PROTOCOL.md, "Rendezvous and relay").
 *
 * @module
 */

import { joinTag, TAG_BYTES } from "../codec/datagram.ts";
import type { MacFields } from "../codec/datagram.ts";
import { constantTimeEqual } from "./constant_time.ts";

/** Bytes of a session's UDP key. */
export const UDP_KEY_BYTES = 32;

/**
 * Import a session's 32-byte UDP key for tagging and checking server datagrams.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importUdpKey } from "./datagram_tag.ts";
 * const key = await importUdpKey(new Uint8Array(32).fill(1));
 * assert(key.usages.includes("sign"));
 * ```
 *
 * @param raw32 The 32 key bytes (copied).
 * @returns An HMAC SHA-256 key, usable to sign only, not extractable.
 * @throws {RangeError} When `raw32` is not 32 bytes (the promise rejects).
 */
export async function importUdpKey(raw32: Uint8Array): Promise<CryptoKey> {
  if (raw32.length !== UDP_KEY_BYTES) {
    throw new RangeError(`UDP key must be ${UDP_KEY_BYTES} bytes: got ${raw32.length}`);
  }
  return await crypto.subtle.importKey("raw", raw32.slice(), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** HMAC-SHA-256 of `macInput` truncated to {@linkcode TAG_BYTES}. */
async function truncatedHmac(
  key: CryptoKey,
  macInput: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, macInput), 0, TAG_BYTES);
}

/**
 * Tag a server datagram: the bytes from the codec's `encodeRdv`, `encodeRdvAck`, `encodeRelay` or
 * `encodeRelayed`, followed by their tag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdv } from "../codec/datagram.ts";
 * import { importUdpKey, tagDatagram, verifyDatagram } from "./datagram_tag.ts";
 * const key = await importUdpKey(new Uint8Array(32));
 * const bytes = await tagDatagram(key, encodeRdv({ handle: new Uint8Array(16), counter: 0 }));
 * assert(bytes.length === 3 + 16 + 8 + 16);
 * const d = decodeDatagram(bytes);
 * assert(d.type === "RDV" && await verifyDatagram(key, d));
 * ```
 *
 * @param key Key from {@linkcode importUdpKey}.
 * @param macInput The datagram without its tag (not changed).
 * @returns The whole datagram, in a buffer of its own.
 * @throws {RangeError} When the tagged datagram would exceed the codec's `MAX_DATAGRAM` (the promise
 *   rejects); the codec's encoders never give such bytes.
 */
export async function tagDatagram(
  key: CryptoKey,
  macInput: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  return joinTag(macInput, await truncatedHmac(key, macInput));
}

/**
 * Check the tag of a decoded server datagram, in constant time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeDatagram, encodeRdv } from "../codec/datagram.ts";
 * import { importUdpKey, tagDatagram, verifyDatagram } from "./datagram_tag.ts";
 * const key = await importUdpKey(new Uint8Array(32));
 * const d = decodeDatagram(await tagDatagram(key, encodeRdv({ handle: new Uint8Array(16), counter: 7 })));
 * if (d.type !== "RDV") throw new Error("not an RDV");
 * assert(await verifyDatagram(key, d));
 * d.tag[0]! ^= 1;
 * assert(!await verifyDatagram(key, d));
 * ```
 *
 * @param key Key from {@linkcode importUdpKey}.
 * @param d A decoded RDV, RDV_ACK, RELAY or RELAYED: `macInput` and `tag` as the codec split them.
 * @returns Whether the tag is right (false for a tag of any other length).
 */
export async function verifyDatagram(key: CryptoKey, d: MacFields): Promise<boolean> {
  return constantTimeEqual(await truncatedHmac(key, d.macInput), d.tag);
}
