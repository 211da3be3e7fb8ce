/**
 * AES-256-GCM protection of the RECORD datagrams of a server session over UDP
 * (docs/PROTOCOL.md 20.7–20.8). Counters are per direction and never reset;
 * the key generation of a record is its counter divided by the rekey interval
 * (2^23 records), so both sides step to the next key at the same record with
 * no flag on the wire. A 64-entry replay window is checked before decrypting
 * and advanced only once the tag verifies. Nothing here throws on received
 * bytes: a refused record gives a {@linkcode RecordDropReason}.
 *
 * Runs on `node:crypto`, synchronously, for the reason `datagram_cipher.ts`
 * gives (every packet of the reliable layer is sealed and opened).
 *
 * @module
 */

import {
  CONNECTION_ID_BYTES,
  decodeRecord,
  encodeRecordHeader,
  MAX_RECORD_PAYLOAD,
  RECORD_HEADER_BYTES,
  RECORD_TAG_BYTES,
  RECORD_TYPE,
} from "../codec/udp_session_datagram.ts";
import { MAGIC } from "../codec/datagram.ts";
import { openAesGcm, sealAesGcm } from "./aes_gcm.ts";
import { nextTrafficSecret, SECRET_BYTES, type TrafficKeys, trafficKeys } from "./udp_key_schedule.ts";
import { REPLAY_WINDOW_SIZE, ReplayWindow } from "./replay_window.ts";

/**
 * Records per key generation: RFC 9001 §6.6's confidentiality limit for AES-GCM (2^23 packets), well
 * below GCM's 2^32 invocations of one key with random-looking nonces.
 */
export const REKEY_INTERVAL = 2 ** 23;

/** Why a received record was dropped. */
export type RecordDropReason =
  /** Too short for a header and a tag. */
  | "truncated"
  /** Not a RECORD, bad prefix, oversize. */
  | "malformed"
  /** Another connection's id. */
  | "wrong-connection"
  /** Its counter was accepted already. */
  | "replayed"
  /** Older than the 64 counters below the highest accepted, or more than one key generation ahead. */
  | "out-of-window"
  /** The AES-GCM tag does not verify: tampered, or not from the peer. */
  | "forged";

/** Every {@linkcode RecordDropReason}, for counters and logs. */
export const RECORD_DROP_REASONS: readonly RecordDropReason[] = [
  "truncated",
  "malformed",
  "wrong-connection",
  "replayed",
  "out-of-window",
  "forged",
];

/** The outcome of {@linkcode RecordProtection.open}. */
export type OpenResult =
  | { ok: true; counter: number; payload: Uint8Array<ArrayBuffer> }
  | { ok: false; reason: RecordDropReason };

/** Which side of the session this is. */
export type SessionRole = "client" | "server";

/** The secrets a {@linkcode RecordProtection} starts from. */
export interface RecordSecrets {
  /** 8 bytes, from the ACCEPT. */
  connectionId: Uint8Array;
  /** Generation-0 traffic secret of client-to-server records. */
  clientTraffic: Uint8Array;
  /** Generation-0 traffic secret of server-to-client records. */
  serverTraffic: Uint8Array;
}

/** Options of {@linkcode RecordProtection}. */
export interface RecordProtectionOptions {
  /** Records per key generation, 128..2^23 (default {@linkcode REKEY_INTERVAL}); smaller only in tests. */
  rekeyInterval?: number;
}

/** Keys of one generation. */
interface Generation extends TrafficKeys {
  index: number;
  /** This generation's traffic secret (to derive the next one). */
  secret: Uint8Array<ArrayBuffer>;
}

function generation(secret: Uint8Array<ArrayBuffer>, index: number): Generation {
  return { index, secret, ...trafficKeys(secret) };
}

function following(g: Generation): Generation {
  return generation(nextTrafficSecret(g.secret), g.index + 1);
}

function wipe(g: Generation | undefined): void {
  g?.key.fill(0);
  g?.iv.fill(0);
  g?.secret.fill(0);
}

/**
 * Seals outgoing and opens incoming records of one session.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordProtection } from "./udp_record_protection.ts";
 * const secrets = {
 *   connectionId: new Uint8Array(8), clientTraffic: new Uint8Array(32).fill(1),
 *   serverTraffic: new Uint8Array(32).fill(2),
 * };
 * const client = new RecordProtection(secrets, "client");
 * const server = new RecordProtection(secrets, "server");
 * const record = client.seal(new TextEncoder().encode("hi"));
 * const opened = server.open(record);
 * assert(opened.ok && new TextDecoder().decode(opened.payload) === "hi");
 * const again = server.open(record);
 * assert(!again.ok && again.reason === "replayed");
 * ```
 */
export class RecordProtection {
  #connectionId: Uint8Array<ArrayBuffer>;
  #interval: number;
  #send: Generation;
  #counter = 0;
  /** Receive keys: the generation of the highest accepted counter, the one before and the one after. */
  #previous: Generation | undefined;
  #current: Generation;
  #next: Generation;
  #window = new ReplayWindow();
  #drops = Object.fromEntries(RECORD_DROP_REASONS.map((r) => [r, 0])) as Record<RecordDropReason, number>;
  #nonce = new Uint8Array(12);
  #destroyed = false;

  /**
   * Start the record layer of one side.
   *
   * @param secrets Connection id and both generation-0 traffic secrets.
   * @param role Which side this is: the client seals with the c2s secret, the server with the s2c one.
   * @param options Rekey interval (tests).
   * @throws {RangeError} For a connection id that is not 8 bytes, a secret that is not 32 bytes, or an
   *   interval outside 128..2^23.
   */
  constructor(secrets: RecordSecrets, role: SessionRole, options: RecordProtectionOptions = {}) {
    const { rekeyInterval = REKEY_INTERVAL } = options;
    // At least twice the replay window, so a record the window accepts is at most one generation behind.
    if (!Number.isSafeInteger(rekeyInterval) || rekeyInterval < 2 * REPLAY_WINDOW_SIZE) {
      throw new RangeError(`Invalid rekeyInterval: ${rekeyInterval}, expected 128..2^23`);
    }
    if (rekeyInterval > REKEY_INTERVAL) {
      throw new RangeError(`Invalid rekeyInterval: ${rekeyInterval} exceeds 2^23`);
    }
    if (secrets.connectionId.length !== CONNECTION_ID_BYTES) {
      throw new RangeError(`Invalid connection id: ${secrets.connectionId.length} bytes, expected 8`);
    }
    if (secrets.clientTraffic.length !== SECRET_BYTES || secrets.serverTraffic.length !== SECRET_BYTES) {
      throw new RangeError("Invalid traffic secret: expected 32 bytes");
    }
    this.#connectionId = new Uint8Array(secrets.connectionId);
    this.#interval = rekeyInterval;
    const [send, receive] = role === "client"
      ? [secrets.clientTraffic, secrets.serverTraffic]
      : [secrets.serverTraffic, secrets.clientTraffic];
    this.#send = generation(new Uint8Array(send), 0);
    this.#current = generation(new Uint8Array(receive), 0);
    this.#next = following(this.#current);
  }

  /** A copy of the connection id. */
  get connectionId(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#connectionId);
  }

  /** The counter the next {@linkcode seal} uses. */
  get nextCounter(): number {
    return this.#counter;
  }

  /** The key generation of sealed records (rises every `rekeyInterval` records). */
  get sendGeneration(): number {
    return this.#send.index;
  }

  /** The key generation of the highest record accepted. */
  get receiveGeneration(): number {
    return this.#current.index;
  }

  /** How many received records were dropped, by reason (a copy). */
  get drops(): Record<RecordDropReason, number> {
    return { ...this.#drops };
  }

  /**
   * Seal one payload into a whole RECORD under the next counter, stepping to the next key generation
   * when the counter reaches it.
   *
   * @param payload At most {@linkcode MAX_RECORD_PAYLOAD} bytes.
   * @returns The datagram.
   * @throws {RangeError} When the payload is too large, the counter has reached 2^53 - 1, or after
   *   {@linkcode RecordProtection.destroy}.
   */
  seal(payload: Uint8Array): Uint8Array<ArrayBuffer> {
    // Zeroed keys are keys anyone knows: nothing may be sealed under them.
    if (this.#destroyed) throw new RangeError("Record protection destroyed: the session has ended");
    if (payload.length > MAX_RECORD_PAYLOAD) {
      throw new RangeError(`Record payload too large: ${payload.length} bytes exceeds ${MAX_RECORD_PAYLOAD}`);
    }
    if (this.#counter >= Number.MAX_SAFE_INTEGER) throw new RangeError("Record counter exhausted");
    const counter = this.#counter++;
    const index = Math.floor(counter / this.#interval);
    while (this.#send.index < index) {
      const old = this.#send;
      this.#send = following(old);
      wipe(old);
    }
    const header = encodeRecordHeader(this.#connectionId, counter);
    return sealAesGcm(this.#send.key, this.#nonceFor(this.#send.iv, counter), header, payload);
  }

  /**
   * Check and open one received datagram. The connection id and the replay window are checked before
   * decrypting; the window advances only once the tag verifies.
   *
   * @param bytes One datagram, as received.
   * @returns The payload and its counter, or the reason it was dropped (also counted in `drops`).
   */
  open(bytes: Uint8Array): OpenResult {
    const result = this.#open(bytes);
    if (!result.ok) this.#drops[result.reason]++;
    return result;
  }

  #open(bytes: Uint8Array): OpenResult {
    // The session is gone; its zeroed keys must not open what anyone can seal under them.
    if (this.#destroyed) return { ok: false, reason: "wrong-connection" };
    let record;
    try {
      record = decodeRecord(bytes);
    } catch {
      const isRecord = bytes.length >= 3 && bytes[0] === MAGIC && bytes[1] === 1 && bytes[2] === RECORD_TYPE;
      const short = bytes.length < RECORD_HEADER_BYTES + RECORD_TAG_BYTES;
      return { ok: false, reason: isRecord && short ? "truncated" : "malformed" };
    }
    if (!equalBytes(record.connectionId, this.#connectionId)) {
      return { ok: false, reason: "wrong-connection" };
    }
    const { counter } = record;
    if (!this.#window.check(counter)) {
      const old = this.#window.highest - counter >= REPLAY_WINDOW_SIZE;
      return { ok: false, reason: old ? "out-of-window" : "replayed" };
    }
    const index = Math.floor(counter / this.#interval);
    const keys = index === this.#current.index
      ? this.#current
      : index === this.#next.index
      ? this.#next
      : index === this.#previous?.index
      ? this.#previous
      : undefined;
    // A counter more than one generation ahead cannot come from a peer that sent every record before it
    // (2^23 of them lost in a row); refusing it spares the key derivations a forged counter would ask for.
    if (keys === undefined) return { ok: false, reason: "out-of-window" };
    const payload = openAesGcm(keys.key, this.#nonceFor(keys.iv, counter), record.header, record.ciphertext);
    if (payload === null) return { ok: false, reason: "forged" };
    this.#window.accept(counter);
    if (keys === this.#next) {
      wipe(this.#previous);
      this.#previous = this.#current;
      this.#current = this.#next;
      this.#next = following(this.#current);
    }
    return { ok: true, counter, payload };
  }

  /**
   * Forget every key and traffic secret, zeroing them, once the session has ended: from then on
   * {@linkcode RecordProtection.seal} throws and {@linkcode RecordProtection.open} drops everything as
   * `wrong-connection`. Idempotent.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { RecordProtection } from "./udp_record_protection.ts";
   * const secrets = {
   *   connectionId: new Uint8Array(8), clientTraffic: new Uint8Array(32).fill(1), serverTraffic: new Uint8Array(32).fill(2),
   * };
   * const client = new RecordProtection(secrets, "client");
   * const server = new RecordProtection(secrets, "server");
   * const record = client.seal(new Uint8Array([1]));
   * server.destroy();
   * assert.equal(server.open(record).ok, false);
   * assert.throws(() => server.seal(new Uint8Array(1)));
   * ```
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const g of [this.#send, this.#previous, this.#current, this.#next]) wipe(g);
    this.#nonce.fill(0);
  }

  /** The IV XOR the counter as a big-endian u64 in its last 8 bytes. */
  #nonceFor(iv: Uint8Array, counter: number): Uint8Array {
    const nonce = this.#nonce;
    nonce.set(iv);
    let high = Math.floor(counter / 2 ** 32);
    let low = counter >>> 0;
    for (let i = 11; i >= 8; i--, low >>>= 8) nonce[i]! ^= low & 0xff;
    for (let i = 7; i >= 4; i--, high >>>= 8) nonce[i]! ^= high & 0xff;
    return nonce;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
