/**
 * Stateless address-validation cookies for UDP sessions (docs/PROTOCOL.md §20.2), in the spirit of QUIC
 * Retry tokens and DTLS cookies: a MAC (keyed BLAKE3) over the source address and port, a time slot, the
 * difficulty asked and the bytes of the client's `INIT` that a cookie binds, keyed by a per-slot secret. The
 * server keeps nothing per source: a cookie verifies from itself, the datagram and the address it came from.
 *
 * Per-slot keys come from one 32-byte master secret through HKDF-SHA-256, so every node given the same
 * master accepts the others' cookies (nodes must keep their clocks within a slot of each other).
 *
 * @module
 */

import { createBLAKE3, type IHasher } from "hash-wasm";
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

// `/2`: the keys of keyed BLAKE3. Those of `/1` (HMAC-SHA-256, before) are never the same keys.
const HKDF_INFO = new TextEncoder().encode("authchat-udp-cookie/2");
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
  // One keyed BLAKE3 instance per slot, made once: a MAC is init → update → digest with no await in between,
  // so they never interleave. The MACs are most of what a flood's INIT costs besides its send: two keyed
  // BLAKE3 take 3 µs here, where two HMAC-SHA-256 (hash-wasm) took 10.
  #keys = new Map<number, Promise<IHasher>>();
  // The MACs' inputs are written here rather than allocated: a server mints one per INIT of a flood. Room for
  // the longest (the tag's, with a 255-byte address) and one byte more, which tells an address too long.
  #scratch = new Uint8Array(1 + 5 + 2 + 1 + 256 + BOUND_BYTES + INIT_TAG_BYTES);

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
    // From here on nothing awaits: the scratch buffer is this call's until it returns.
    const initTag = mac(key, this.#initInput(slot, difficulty, bound)).subarray(0, INIT_TAG_BYTES);
    const tag = mac(key, this.#addressInput(slot, difficulty, source, bound, initTag));
    const cookie = new Uint8Array(COOKIE_BYTES);
    writeHead(cookie, 0, slot, difficulty);
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
    const slot = ((cookie[0]! << 24) | (cookie[1]! << 16) | (cookie[2]! << 8) | cookie[3]!) >>> 0;
    const difficulty = cookie[4]!;
    const current = this.currentSlot();
    if (slot < current - 1) return { ok: false, reason: "expired_cookie" };
    if (slot > current) return { ok: false, reason: "bad_cookie" };
    const key = await this.#key(slot);
    // From here on nothing awaits: the scratch buffer is this call's until it returns.
    const initTag = cookie.subarray(5 + TAG_BYTES);
    const tag = mac(key, this.#addressInput(slot, difficulty, source, bound, initTag));
    if (constantTimeEqual(tag.subarray(0, TAG_BYTES), cookie.subarray(5, 5 + TAG_BYTES))) {
      return { ok: true, slot, difficulty };
    }
    const expected = mac(key, this.#initInput(slot, difficulty, bound));
    const moved = constantTimeEqual(expected.subarray(0, INIT_TAG_BYTES), initTag);
    return { ok: false, reason: moved ? "moved_cookie" : "bad_cookie" };
  }

  /**
   * `0x01 ‖ slot ‖ difficulty ‖ port:u16 ‖ address:str8 ‖ bound ‖ init_tag`, the tag's input (it covers every
   * other byte of the cookie), written into the scratch buffer.
   */
  #addressInput(
    slot: number,
    difficulty: number,
    source: SourceAddress,
    bound: Uint8Array,
    initTag: Uint8Array,
  ): Uint8Array {
    checkBound(bound);
    const { hostname, port } = source;
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`Invalid port: ${port}`);
    const out = this.#scratch;
    // Room for 255 bytes and one more: an address that fills it all is too long.
    const { read, written } = utf8.encodeInto(hostname, out.subarray(9, 9 + 256));
    if (written === 0 || written > 255 || read < hostname.length) {
      const bytes = utf8.encode(hostname).length;
      throw new RangeError(`Invalid address: ${bytes} UTF-8 bytes is outside 1..255`);
    }
    out[0] = 0x01;
    writeHead(out, 1, slot, difficulty);
    out[6] = port >>> 8;
    out[7] = port & 0xff;
    out[8] = written;
    out.set(bound, 9 + written);
    out.set(initTag, 9 + written + BOUND_BYTES);
    return out.subarray(0, 9 + written + BOUND_BYTES + INIT_TAG_BYTES);
  }

  /** `0x02 ‖ slot ‖ difficulty ‖ bound`, the init tag's input, written into the scratch buffer. */
  #initInput(slot: number, difficulty: number, bound: Uint8Array): Uint8Array {
    checkBound(bound);
    const out = this.#scratch;
    out[0] = 0x02;
    writeHead(out, 1, slot, difficulty);
    out.set(bound, 6);
    return out.subarray(0, 6 + BOUND_BYTES);
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
    return await createBLAKE3(256, new Uint8Array(bits));
  }
}

/** Keyed BLAKE3 (256 bits) with a slot's hasher, synchronously. */
function mac(keyed: IHasher, data: Uint8Array): Uint8Array {
  keyed.init();
  keyed.update(data);
  return keyed.digest("binary");
}

/** Writes `slot:u32 ‖ difficulty:u8` into `out` at `at`. */
function writeHead(out: Uint8Array, at: number, slot: number, difficulty: number): void {
  out[at] = slot >>> 24;
  out[at + 1] = (slot >>> 16) & 0xff;
  out[at + 2] = (slot >>> 8) & 0xff;
  out[at + 3] = slot & 0xff;
  out[at + 4] = difficulty;
}

function checkBound(bound: Uint8Array): void {
  if (bound.length !== BOUND_BYTES) {
    throw new RangeError(`Bound bytes must be ${BOUND_BYTES}: got ${bound.length}`);
  }
}
