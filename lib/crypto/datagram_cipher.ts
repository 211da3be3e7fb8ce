/**
 * AES-256-GCM for the DATA datagrams of one peer session: the header is the
 * associated data, the nonce is the counter, and a replay window guards the
 * receiving side.
 *
 * @module
 */

import { DATA_HEADER_BYTES, type DataDatagram, encodeData, encodeDataHeader } from "../codec/datagram.ts";
import type { SessionKeys } from "./peer_session.ts";
import { ReplayWindow } from "./replay_window.ts";

/** Counters must stay below this: GCM nonces of one key must never repeat, and the peers rekey well before. */
export const MAX_COUNTER = 2 ** 32;
/** Default counter at which {@linkcode DatagramCipher.needsRekey} turns true. */
export const DEFAULT_REKEY_AFTER = 2 ** 32 - 2 ** 16;

const TAG_BYTES = 16;

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
 * console.assert(new TextDecoder().decode((await bob.open(d))!) === "hi");
 * console.assert(await bob.open(d) === null && bob.stats.replayed === 1);
 * ```
 */
export class DatagramCipher {
  #sessionId: Uint8Array<ArrayBuffer>;
  #sendKey: CryptoKey;
  #receiveKey: CryptoKey;
  #counter: number;
  #rekeyAfter: number;
  #window = new ReplayWindow();
  #stats: DatagramCipherStats = { replayed: 0, forged: 0 };

  /**
   * Make the cipher of one session.
   *
   * @param keys Output of `deriveSessionKeys`.
   * @param options Rekey threshold and (for tests) the first counter.
   * @throws {RangeError} When an option is not an integer within its bounds.
   */
  constructor(keys: SessionKeys, options: DatagramCipherOptions = {}) {
    const { rekeyAfter = DEFAULT_REKEY_AFTER, startCounter = 0 } = options;
    if (!Number.isSafeInteger(rekeyAfter) || rekeyAfter < 1 || rekeyAfter > MAX_COUNTER) {
      throw new RangeError(`Invalid rekeyAfter: ${rekeyAfter}, expected 1..2^32`);
    }
    if (!Number.isSafeInteger(startCounter) || startCounter < 0 || startCounter > MAX_COUNTER) {
      throw new RangeError(`Invalid startCounter: ${startCounter}, expected 0..2^32`);
    }
    this.#sessionId = new Uint8Array(keys.sessionId);
    this.#sendKey = keys.sendKey;
    this.#receiveKey = keys.receiveKey;
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
    // Taken before any await, so concurrent seals never share a nonce.
    const counter = this.#counter++;
    return this.#encrypt(counter, plaintext);
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
  async open(d: DataDatagram): Promise<Uint8Array<ArrayBuffer> | null> {
    // The sender never uses a counter at or past 2^32, so such a datagram is forged.
    if (!Number.isSafeInteger(d.counter) || d.counter < 0 || d.counter >= MAX_COUNTER) {
      this.#stats.forged++;
      return null;
    }
    if (!this.#window.check(d.counter)) {
      this.#stats.replayed++;
      return null;
    }
    // The header must be exactly ours for this counter; GCM would refuse any
    // other one anyway, this just spares the decryption.
    if (
      d.header.length !== DATA_HEADER_BYTES || d.ciphertext.length < TAG_BYTES ||
      !sameBytes(d.header, encodeDataHeader(this.#sessionId, d.counter))
    ) {
      this.#stats.forged++;
      return null;
    }
    let plaintext: Uint8Array<ArrayBuffer>;
    try {
      plaintext = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: nonce(d.counter), additionalData: d.header },
          this.#receiveKey,
          d.ciphertext,
        ),
      );
    } catch {
      this.#stats.forged++;
      return null;
    }
    // Another open of the same counter may have finished while this one decrypted.
    if (!this.#window.accept(d.counter)) {
      this.#stats.replayed++;
      return null;
    }
    return plaintext;
  }

  async #encrypt(counter: number, plaintext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    const header = encodeDataHeader(this.#sessionId, counter);
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce(counter), additionalData: header },
        this.#sendKey,
        plaintext,
      ),
    );
    return encodeData(header, ciphertext);
  }
}

/** 4 zero bytes, then the counter as a big-endian u64. */
function nonce(counter: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(counter));
  return iv;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
