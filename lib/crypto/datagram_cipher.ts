/**
 * AES-256-GCM for the DATA datagrams of one peer session: the header is the
 * associated data, the nonce is the counter, and a replay window guards the
 * receiving side.
 *
 * It runs on `node:crypto`, not WebCrypto: every message and acknowledgement
 * is sealed and opened, and in Deno a WebCrypto call is an asynchronous
 * operation of 40–50 µs where `node:crypto` does the same AES-GCM in about 15
 * µs synchronously (measured; see docs/BENCHMARKS.md). The tests check the
 * output against WebCrypto's.
 *
 * @module
 */

import {
  DATA_HEADER_BYTES,
  type DataDatagram,
  encodeDataHeader,
  MAX_PEER_DATAGRAM,
} from "../codec/datagram.ts";
import { GCM_TAG_BYTES, openAesGcm, sealAesGcm } from "./aes_gcm.ts";
import { constantTimeEqual } from "./constant_time.ts";
import type { SessionKeys } from "./peer_session.ts";
import { ReplayWindow } from "./replay_window.ts";

/** Counters must stay below this: GCM nonces of one key must never repeat, and the peers rekey well before. */
export const MAX_COUNTER = 2 ** 32;
/** Default counter at which {@linkcode DatagramCipher.needsRekey} turns true. */
export const DEFAULT_REKEY_AFTER = 2 ** 32 - 2 ** 16;

const TAG_BYTES = GCM_TAG_BYTES;

/** Options of {@linkcode DatagramCipher}. */
export interface DatagramCipherOptions {
  /** Counter from which `needsRekey` is true; 1..2^32, default 2^32 - 2^16. */
  rekeyAfter?: number;
  /** First send counter, 0..2^32 (default 0); other than 0 only to test the limits. */
  startCounter?: number;
}

/** What {@linkcode DatagramCipher.open} refused. */
export interface DatagramCipherStats {
  /** Refused by the replay window, without decrypting. */
  replayed: number;
  /** Failed authentication (or cannot have come from the peer). */
  forged: number;
}

/**
 * Encrypts outgoing and authenticates incoming DATA datagrams of one session.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatagramCipher } from "./datagram_cipher.ts";
 * import { deriveSessionKeys, generateEphemeral } from "./peer_session.ts";
 * const a = await generateEphemeral();
 * const b = await generateEphemeral();
 * const common = { initiator: "alice", responder: "bob", ephInit: a.publicKey, ephResp: b.publicKey };
 * const alice = new DatagramCipher(await deriveSessionKeys({
 *   ...common, ephemeralPrivate: a.privateKey, peerEphemeral: b.publicKey, role: "initiator",
 * }));
 * const bob = new DatagramCipher(await deriveSessionKeys({
 *   ...common, ephemeralPrivate: b.privateKey, peerEphemeral: a.publicKey, role: "responder",
 * }));
 * const bytes = await alice.seal(new TextEncoder().encode("hi"));
 * const d = {
 *   type: "DATA" as const, session: bytes.slice(3, 11), counter: 0,
 *   header: bytes.slice(0, 19), ciphertext: bytes.slice(19),
 * };
 * assert(new TextDecoder().decode((await bob.open(d))!) === "hi");
 * assert(await bob.open(d) === null && bob.stats.replayed === 1);
 * ```
 */
export class DatagramCipher {
  #sessionId: Uint8Array<ArrayBuffer>;
  #sendKey: Uint8Array<ArrayBuffer>;
  #receiveKey: Uint8Array<ArrayBuffer>;
  #counter: number;
  #rekeyAfter: number;
  #window = new ReplayWindow();
  #stats: DatagramCipherStats = { replayed: 0, forged: 0 };
  /** The nonce, rewritten for each datagram (used before anything awaits). */
  #nonce = new Uint8Array(12);
  #nonceView = new DataView(this.#nonce.buffer);

  /**
   * Make the cipher of one session.
   *
   * @param keys Output of `deriveSessionKeys`.
   * @param options Rekey threshold and (for tests) the first counter.
   * @throws {RangeError} When an option is not an integer within its bounds, or a key is not 32 bytes.
   */
  constructor(keys: SessionKeys, options: DatagramCipherOptions = {}) {
    if (keys.sendKey.length !== 32 || keys.receiveKey.length !== 32) {
      throw new RangeError("Invalid session keys: AES-256 keys are 32 bytes");
    }
    const { rekeyAfter = DEFAULT_REKEY_AFTER, startCounter = 0 } = options;
    if (!Number.isSafeInteger(rekeyAfter) || rekeyAfter < 1 || rekeyAfter > MAX_COUNTER) {
      throw new RangeError(`Invalid rekeyAfter: ${rekeyAfter}, expected 1..2^32`);
    }
    if (!Number.isSafeInteger(startCounter) || startCounter < 0 || startCounter > MAX_COUNTER) {
      throw new RangeError(`Invalid startCounter: ${startCounter}, expected 0..2^32`);
    }
    this.#sessionId = new Uint8Array(keys.sessionId);
    this.#sendKey = new Uint8Array(keys.sendKey);
    this.#receiveKey = new Uint8Array(keys.receiveKey);
    this.#counter = startCounter;
    this.#rekeyAfter = rekeyAfter;
  }

  /** A copy of the 8-byte session id. */
  get sessionId(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#sessionId);
  }

  /** The counter the next {@linkcode seal} will use. */
  get nextCounter(): number {
    return this.#counter;
  }

  /** Whether the session should be rekeyed: the send counter has reached `rekeyAfter`. */
  get needsRekey(): boolean {
    return this.#counter >= this.#rekeyAfter;
  }

  /** Counts of refused datagrams (a copy). */
  get stats(): DatagramCipherStats {
    return { ...this.#stats };
  }

  /**
   * Encrypt one plaintext into a whole DATA datagram under the next counter.
   *
   * @param plaintext The packet to carry.
   * @returns The datagram: header, then ciphertext and tag.
   * @throws {RangeError} When the counter has reached 2^32: the session must be rekeyed.
   */
  seal(plaintext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#counter >= MAX_COUNTER) {
      return Promise.reject(new RangeError("Datagram counter exhausted: 2^32 datagrams sent, rekey first"));
    }
    // Taken before anything else, so seals never share a nonce.
    const counter = this.#counter++;
    return Promise.resolve(this.#encrypt(counter, plaintext));
  }

  /**
   * Authenticate and decrypt one DATA datagram. The replay window is
   * consulted before decrypting and advanced only once the tag verifies, so
   * a replay costs no decryption and a forgery cannot move the window.
   *
   * @param d The decoded datagram.
   * @returns The plaintext, or `null` for a replay (`stats.replayed`) or a
   *   datagram that fails authentication (`stats.forged`).
   */
  open(d: DataDatagram): Promise<Uint8Array<ArrayBuffer> | null> {
    return Promise.resolve(this.#open(d));
  }

  #open(d: DataDatagram): Uint8Array<ArrayBuffer> | null {
    // The sender never uses a counter at or past 2^32, so such a datagram is forged.
    if (!Number.isSafeInteger(d.counter) || d.counter < 0 || d.counter >= MAX_COUNTER) {
      this.#stats.forged++;
      return null;
    }
    if (!this.#window.check(d.counter)) {
      this.#stats.replayed++;
      return null;
    }
    // The header must be exactly ours for this counter (the decoder read the counter from it); GCM would
    // refuse any other one anyway, this just spares the decryption.
    if (
      d.header.length !== DATA_HEADER_BYTES || d.ciphertext.length < TAG_BYTES ||
      !constantTimeEqual(d.header.subarray(3, 11), this.#sessionId)
    ) {
      this.#stats.forged++;
      return null;
    }
    const plaintext = openAesGcm(this.#receiveKey, this.#nonceFor(d.counter), d.header, d.ciphertext);
    if (plaintext === null) {
      this.#stats.forged++;
      return null;
    }
    if (!this.#window.accept(d.counter)) {
      this.#stats.replayed++;
      return null;
    }
    return plaintext;
  }

  /** 4 zero bytes, then the counter as a big-endian u64 (counters stay below 2^32). */
  #nonceFor(counter: number): Uint8Array<ArrayBuffer> {
    this.#nonceView.setUint32(4, Math.floor(counter / 2 ** 32));
    this.#nonceView.setUint32(8, counter >>> 0);
    return this.#nonce;
  }

  #encrypt(counter: number, plaintext: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
    // GCM adds nothing but its tag: the size is known before sealing.
    const length = DATA_HEADER_BYTES + plaintext.length + TAG_BYTES;
    if (length > MAX_PEER_DATAGRAM) {
      throw new RangeError(`Datagram too large: ${length} bytes exceeds ${MAX_PEER_DATAGRAM}`);
    }
    return sealAesGcm(
      this.#sendKey,
      this.#nonceFor(counter),
      encodeDataHeader(this.#sessionId, counter),
      plaintext,
    );
  }
}
