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
 * It runs on hash-wasm's SHA-256, keyed once per session, synchronously: a tag is made or checked for
 * every rendezvous and relayed datagram (four times per relayed datagram and its way through the server),
 * and WebCrypto's HMAC is an asynchronous operation in Deno, 20–50 µs and a trip through a thread pool
 * each, which the relay's latency and its tail showed. The server still bounds how many checks are under
 * way (docs/PROTOCOL.md, "Rendezvous and relay"). Tests compare the tags with `node:crypto`'s HMAC.
 *
 * @module
 */

import { createHMAC, createSHA256 } from "hash-wasm";
import type { IHasher } from "hash-wasm";
import { joinTag, TAG_BYTES } from "../codec/datagram.ts";
import type { MacFields } from "../codec/datagram.ts";
import { constantTimeEqual } from "./constant_time.ts";

/** Bytes of a session's UDP key. */
export const UDP_KEY_BYTES = 32;

// One SHA-256 instance under every key's HMAC: each tag runs init → update → digest without yielding.
const sha256 = createSHA256();

/** A session's UDP key, ready to tag and check server datagrams (the key bytes are not readable from it). */
export interface UdpKey {
  /** The HMAC-SHA-256 of some bytes under the key. */
  readonly mac: (bytes: Uint8Array) => Uint8Array<ArrayBuffer>;
}

/**
 * Import a session's 32-byte UDP key for tagging and checking server datagrams.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importUdpKey } from "./datagram_tag.ts";
 * const key = await importUdpKey(new Uint8Array(32).fill(1));
 * assert.equal(key.mac(new Uint8Array(0)).length, 32);
 * ```
 *
 * @param raw32 The 32 key bytes (not kept: the HMAC keeps only its padded inner and outer keys).
 * @returns The key.
 * @throws {RangeError} When `raw32` is not 32 bytes (the promise rejects).
 */
export async function importUdpKey(raw32: Uint8Array): Promise<UdpKey> {
  if (raw32.length !== UDP_KEY_BYTES) {
    throw new RangeError(`UDP key must be ${UDP_KEY_BYTES} bytes: got ${raw32.length}`);
  }
  const hmac: IHasher = await createHMAC(sha256, raw32.slice());
  return {
    mac: (bytes) => {
      hmac.init();
      hmac.update(bytes);
      return new Uint8Array(hmac.digest("binary"));
    },
  };
}

/** HMAC-SHA-256 of `macInput` truncated to {@linkcode TAG_BYTES}. */
function truncatedHmac(key: UdpKey, macInput: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return key.mac(macInput).slice(0, TAG_BYTES);
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
export function tagDatagram(
  key: UdpKey,
  macInput: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return Promise.resolve(joinTag(macInput, truncatedHmac(key, macInput)));
  } catch (err) {
    return Promise.reject(err);
  }
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
export function verifyDatagram(key: UdpKey, d: MacFields): Promise<boolean> {
  return Promise.resolve(constantTimeEqual(truncatedHmac(key, d.macInput), d.tag));
}
