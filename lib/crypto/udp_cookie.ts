/**
 * Stateless address-validation cookies for UDP sessions (docs/PROTOCOL.md §20.2), in the spirit of QUIC
 * Retry tokens and DTLS cookies: a MAC over the source address and port, a time slot, the difficulty asked
 * and the bytes of the client's `INIT` that a cookie binds, keyed by a per-slot secret. The server keeps
 * nothing per source: a cookie verifies from itself, the datagram and the address it came from.
 *
 * Per-slot keys come from one 32-byte master secret through HKDF-SHA-256, so every node given the same
 * master accepts the others' cookies (nodes must keep their clocks within a slot of each other).
 *
 * @module
 */

import { createHMAC, createSHA256, type IHasher } from "hash-wasm";
import { constantTimeEqual } from "./constant_time.ts";

/** Bytes of a cookie: `slot:u32`, `difficulty:u8`, `tag[16]`, `init_tag[8]`. */
export const COOKIE_BYTES = 29;
/** Default length of a time slot. A cookie lives in its slot and the next, so at most twice this. */
export const DEFAULT_SLOT_MS = 10_000;
/** Bytes of the cookie's address-bound tag. */
const TAG_BYTES = 16;
/** Bytes of the cookie's tag without the address (tells a moved cookie from a forged one; never admits). */
const INIT_TAG_BYTES = 8;
/** Bytes of an `INIT`'s bound span (prefix, version, client_random, client_share). */
const BOUND_BYTES = 68;

const HKDF_INFO = new TextEncoder().encode("authchat-udp-cookie/1");
const utf8 = new TextEncoder();

/** A datagram's source as the server's socket reports it. */
export interface SourceAddress {
  /** The address as text (`127.0.0.5`, `::1`), exactly as the socket reports it. */
  hostname: string;
  /** The UDP port. */
  port: number;
}

/** Why a cookie was refused. */
export type CookieFailure = "bad_cookie" | "expired_cookie" | "moved_cookie";

/** The outcome of {@linkcode UdpCookies.verify}. */
export type CookieCheck =
  | { ok: true; slot: number; difficulty: number }
  | { ok: false; reason: CookieFailure };

/** Options of {@linkcode UdpCookies}. */
export interface UdpCookiesOptions {
  /** Milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
  /** Slot length in milliseconds (default {@linkcode DEFAULT_SLOT_MS}). */
  slotMs?: number;
}

/**
 * Mints and verifies cookies. Holds at most the keys of the current slot and the one before it, whatever it
 * is asked (a cookie of any other slot is refused before any key is derived).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UdpCookies } from "./udp_cookie.ts";
 * const cookies = new UdpCookies(new Uint8Array(32).fill(7), { now: () => 0 });
 * const bound = new Uint8Array(68);
 * const source = { hostname: "127.0.0.9", port: 4000 };
 * const cookie = await cookies.mint(source, bound, 0);
 * assert((await cookies.verify(cookie, source, bound)).ok);
 * assert(!(await cookies.verify(cookie, { hostname: "127.0.0.9", port: 4001 }, bound)).ok);
 * ```
 */
export class UdpCookies {
  #master: Promise<CryptoKey>;
  #now: () => number;
  #slotMs: number;
  #keys = new Map<number, Promise<IHasher>>();
  // One SHA-256 instance of its own, under every slot's HMAC: a MAC is init → update → digest with no await
  // in between, so they never interleave. Keyed HMACs are made once per slot: a cookie costs two SHA-256
  // compressions per MAC, not the four of keying and hashing each time (a flood's cost is mostly this).
  #sha256: Promise<IHasher> | undefined;

  /**
   * Make the minter and verifier.
   *
   * @param master The 32-byte master secret, shared by every node that must accept the others' cookies.
   * @param options Clock and slot length.
   * @throws {RangeError} When `master` is not 32 bytes or `slotMs` is not a positive integer.
   */
  constructor(master: Uint8Array, options: UdpCookiesOptions = {}) {
    if (master.length !== 32) {
      throw new RangeError(`Cookie master secret must be 32 bytes: got ${master.length}`);
    }
    const slotMs = options.slotMs ?? DEFAULT_SLOT_MS;
    if (!Number.isSafeInteger(slotMs) || slotMs <= 0) throw new RangeError(`Invalid slot length: ${slotMs}`);
    this.#master = crypto.subtle.importKey("raw", master.slice(), "HKDF", false, ["deriveBits"]);
    this.#now = options.now ?? Date.now;
    this.#slotMs = slotMs;
  }

  /** How many slot keys are held (at most 2): tests use it to show nothing grows with the sources seen. */
  get heldKeys(): number {
    return this.#keys.size;
  }

  /** The current time slot. */
  currentSlot(): number {
    return Math.floor(this.#now() / this.#slotMs);
  }

  /**
   * Mint a cookie for the current slot.
   *
   * @param source Where the `INIT` came from.
   * @param bound The `INIT`'s bound bytes (`InitDatagram.bound`, 68 bytes).
   * @param difficulty The proof of work asked with it (0..255), bound into the cookie.
   * @returns {@linkcode COOKIE_BYTES} bytes.
   * @throws {RangeError} When a field is out of range.
   */
  async mint(source: SourceAddress, bound: Uint8Array, difficulty: number): Promise<Uint8Array<ArrayBuffer>> {
    if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 255) {
      throw new RangeError(`Invalid difficulty: ${difficulty} is not a u8`);
    }
    const slot = this.currentSlot();
    const key = await this.#key(slot);
    const head = new Uint8Array(5);
    new DataView(head.buffer).setUint32(0, slot);
    head[4] = difficulty;
    const initTag = mac(key, initInput(head, bound)).subarray(0, INIT_TAG_BYTES);
    const tag = mac(key, addressInput(head, source, bound, initTag));
    const cookie = new Uint8Array(COOKIE_BYTES);
    cookie.set(head);
    cookie.set(tag.subarray(0, TAG_BYTES), 5);
    cookie.set(initTag, 5 + TAG_BYTES);
    return cookie;
  }

  /**
   * Verify a cookie: the right length, of the current or the previous slot, minted for this source and
   * these bound bytes. Tags are compared in constant time.
   *
   * @param cookie The cookie from the `INIT`.
   * @param source Where the `INIT` came from.
   * @param bound The `INIT`'s bound bytes.
   * @returns `ok` with the slot and difficulty it was minted with, or why it is refused: `expired_cookie`
   *   (a slot before the previous one), `moved_cookie` (its init tag is right for these bytes but its tag is
   *   not for this address and port: moved, or its tag tampered with), `bad_cookie` (anything else: wrong
   *   length, a future slot, forged).
   * @throws {RangeError} When `source` or `bound` is out of range (they come from the server, not the peer).
   */
  async verify(cookie: Uint8Array, source: SourceAddress, bound: Uint8Array): Promise<CookieCheck> {
    if (cookie.length !== COOKIE_BYTES) return { ok: false, reason: "bad_cookie" };
    const head = cookie.slice(0, 5);
    const slot = new DataView(head.buffer).getUint32(0);
    const current = this.currentSlot();
    if (slot < current - 1) return { ok: false, reason: "expired_cookie" };
    if (slot > current) return { ok: false, reason: "bad_cookie" };
    const key = await this.#key(slot);
    const initTag = cookie.subarray(5 + TAG_BYTES);
    const tag = mac(key, addressInput(head, source, bound, initTag));
    if (constantTimeEqual(tag.subarray(0, TAG_BYTES), cookie.subarray(5, 5 + TAG_BYTES))) {
      return { ok: true, slot, difficulty: head[4]! };
    }
    const expected = mac(key, initInput(head, bound));
    const moved = constantTimeEqual(expected.subarray(0, INIT_TAG_BYTES), initTag);
    return { ok: false, reason: moved ? "moved_cookie" : "bad_cookie" };
  }

  /** The key of a slot, derived once; only the current and previous slots' keys are kept. */
  #key(slot: number): Promise<IHasher> {
    let key = this.#keys.get(slot);
    if (key === undefined) {
      const current = this.currentSlot();
      for (const held of this.#keys.keys()) {
        if (held < current - 1 || held > current) this.#keys.delete(held);
      }
      key = this.#derive(slot);
      this.#keys.set(slot, key);
      // A failed derivation must not stay cached.
      key.catch(() => this.#keys.delete(slot));
    }
    return key;
  }

  async #derive(slot: number): Promise<IHasher> {
    const info = new Uint8Array(HKDF_INFO.length + 4);
    info.set(HKDF_INFO);
    new DataView(info.buffer).setUint32(HKDF_INFO.length, slot);
    const bits = await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info },
      await this.#master,
      256,
    );
    this.#sha256 ??= createSHA256();
    return await createHMAC(this.#sha256, new Uint8Array(bits));
  }
}

/** HMAC-SHA-256 with a keyed hasher, synchronously. */
function mac(hmac: IHasher, data: Uint8Array): Uint8Array {
  hmac.init();
  hmac.update(data);
  return hmac.digest("binary");
}

/** `0x01 ‖ slot ‖ difficulty ‖ port:u16 ‖ address:str8 ‖ bound ‖ init_tag`: the tag covers every other byte. */
function addressInput(
  head: Uint8Array,
  source: SourceAddress,
  bound: Uint8Array,
  initTag: Uint8Array,
): Uint8Array<ArrayBuffer> {
  checkBound(bound);
  const { hostname, port } = source;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`Invalid port: ${port}`);
  const address = utf8.encode(hostname);
  if (address.length === 0 || address.length > 255) {
    throw new RangeError(`Invalid address: ${address.length} UTF-8 bytes is outside 1..255`);
  }
  const out = new Uint8Array(1 + 5 + 2 + 1 + address.length + BOUND_BYTES + INIT_TAG_BYTES);
  out[0] = 0x01;
  out.set(head, 1);
  new DataView(out.buffer).setUint16(6, port);
  out[8] = address.length;
  out.set(address, 9);
  out.set(bound, 9 + address.length);
  out.set(initTag, 9 + address.length + BOUND_BYTES);
  return out;
}

/** `0x02 ‖ slot ‖ difficulty ‖ bound`. */
function initInput(head: Uint8Array, bound: Uint8Array): Uint8Array<ArrayBuffer> {
  checkBound(bound);
  const out = new Uint8Array(1 + 5 + BOUND_BYTES);
  out[0] = 0x02;
  out.set(head, 1);
  out.set(bound, 6);
  return out;
}

function checkBound(bound: Uint8Array): void {
  if (bound.length !== BOUND_BYTES) {
    throw new RangeError(`Bound bytes must be ${BOUND_BYTES}: got ${bound.length}`);
  }
}
