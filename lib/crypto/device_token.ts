/**
 * Device tokens (OWASP's "device cookies", against lockouts of the real owner): after a successful login
 * the server gives the client a token bound to that account and to its current password; a later LOGIN
 * that shows it is exempt from the backoff strangers' failures caused (docs/PROTOCOL.md, section 7).
 *
 * A token is 73 bytes, carried as standard base64 (100 characters):
 *
 * ```
 * version u8 (1) | account id u64 | issued at u64 | expires at u64 | token id (16 random bytes) | tag (32)
 * ```
 *
 * Integers are big-endian, times in milliseconds since the Unix epoch. The tag is
 * HMAC-SHA-256(K, the first 41 bytes ‖ u16 length ‖ UTF-8 name key ‖ u8 length ‖ StoredKey), where the
 * name key is the account's lower-cased name and StoredKey is that of its current verifier, and K is
 * HKDF-SHA-256 of the store's mock secret (empty salt, info `authchat-device-token/1`, 32 bytes): every
 * node sharing the database derives the same key, and nothing new is stored. A token thus dies with
 * the password it was issued under (a new verifier has a new StoredKey) and with its account (a
 * re-created account has a verifier of its own, with a fresh salt; SQLite may reuse its row id, so the id
 * alone would not do); the server keeps no list of tokens.
 *
 * @module
 */

import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { constantTimeEqual } from "./constant_time.ts";
import { hmacSha256 } from "./sha256.ts";

/** The token format this code issues and accepts. */
export const DEVICE_TOKEN_VERSION = 1;
/** How long a token is valid after it is issued: 180 days (each login issues a fresh one). */
export const DEVICE_TOKEN_LIFETIME_MS = 180 * 86_400_000;
/** Bytes of a token. */
export const DEVICE_TOKEN_BYTES = 73;
/** The HKDF `info` the token key is derived with. */
export const DEVICE_TOKEN_KDF_INFO = "authchat-device-token/1";

/** Bytes the tag covers from the token itself: version, account id, times and token id. */
const SIGNED_BYTES = 41;
const ID_BYTES = 16;
const encoder = new TextEncoder();

/** What a token is bound to: the account as LOGIN names it and as the store holds it. */
export interface DeviceTokenSubject {
  /** The account's row id; `null` for a name without an account (no token matches it). */
  accountId: number | null;
  /** The lower-cased name the LOGIN asked for. */
  nameKey: string;
  /** StoredKey of the account's current verifier (of the mock verifier for a name without an account). */
  storedKey: Uint8Array;
}

/** A token that passed its check (or was just issued): what the rate limiter counts it by. */
export interface ValidDeviceToken {
  /** The token id, in hex: its own failures are counted under it. */
  id: string;
  /** When it stops being valid, ms. */
  expiresAt: number;
}

/** Why a token is not valid: not a token at all, not this account's (or its password's), or too old. */
export type DeviceTokenFault = "malformed" | "invalid" | "expired";

/** The outcome of {@linkcode DeviceTokenKey.check}. */
export type DeviceTokenCheck = { ok: true; token: ValidDeviceToken } | { ok: false; fault: DeviceTokenFault };

/**
 * The server's token key: issues tokens and checks them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DeviceTokenKey } from "./device_token.ts";
 * const key = await DeviceTokenKey.derive(new Uint8Array(32));
 * const subject = { accountId: 7, nameKey: "alice", storedKey: new Uint8Array(32).fill(1) };
 * const { token } = await key.issue({ ...subject, accountId: 7 }, 0);
 * assert((await key.check(token, subject, 1000)).ok);
 * assert(!(await key.check(token, { ...subject, nameKey: "bob" }, 1000)).ok);
 * ```
 */
export class DeviceTokenKey {
  #key: Uint8Array<ArrayBuffer>;

  private constructor(key: Uint8Array<ArrayBuffer>) {
    this.#key = key;
  }

  /**
   * Derive the token key from the store's mock secret (HKDF-SHA-256, info {@linkcode DEVICE_TOKEN_KDF_INFO}).
   *
   * @param secret The mock secret (32 bytes, from the meta table).
   * @returns The key.
   */
  static async derive(secret: Uint8Array<ArrayBuffer>): Promise<DeviceTokenKey> {
    const base = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: encoder.encode(DEVICE_TOKEN_KDF_INFO) },
      base,
      256,
    );
    return new DeviceTokenKey(new Uint8Array(bits));
  }

  /** The tag of a token's first 41 bytes for a subject. */
  #tag(signed: Uint8Array, subject: DeviceTokenSubject): Promise<Uint8Array<ArrayBuffer>> {
    const name = encoder.encode(subject.nameKey);
    if (name.length > 0xffff || subject.storedKey.length > 0xff) {
      throw new RangeError("Device token subject too long: a name key or StoredKey does not fit its length");
    }
    const input = new Uint8Array(SIGNED_BYTES + 2 + name.length + 1 + subject.storedKey.length);
    const view = new DataView(input.buffer);
    input.set(signed.subarray(0, SIGNED_BYTES));
    view.setUint16(SIGNED_BYTES, name.length);
    input.set(name, SIGNED_BYTES + 2);
    view.setUint8(SIGNED_BYTES + 2 + name.length, subject.storedKey.length);
    input.set(subject.storedKey, SIGNED_BYTES + 3 + name.length);
    return hmacSha256(this.#key, input);
  }

  /**
   * Issue a token for an account.
   *
   * @param subject The account: row id, lower-cased name, StoredKey of its current verifier.
   * @param now Current time, ms.
   * @param lifetimeMs How long it is valid (default {@linkcode DEVICE_TOKEN_LIFETIME_MS}).
   * @returns The token (base64) and its id and expiry.
   * @throws {RangeError} When the account id or a time is not a non-negative safe integer.
   */
  async issue(
    subject: DeviceTokenSubject & { accountId: number },
    now: number,
    lifetimeMs: number = DEVICE_TOKEN_LIFETIME_MS,
  ): Promise<{ token: string; grant: ValidDeviceToken }> {
    const expiresAt = now + lifetimeMs;
    for (const value of [subject.accountId, now, expiresAt]) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Device token field out of range: ${value}`);
      }
    }
    const bytes = new Uint8Array(DEVICE_TOKEN_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint8(0, DEVICE_TOKEN_VERSION);
    view.setBigUint64(1, BigInt(subject.accountId));
    view.setBigUint64(9, BigInt(now));
    view.setBigUint64(17, BigInt(expiresAt));
    crypto.getRandomValues(bytes.subarray(25, SIGNED_BYTES));
    bytes.set(await this.#tag(bytes, subject), SIGNED_BYTES);
    return { token: encodeBase64(bytes), grant: { id: tokenId(bytes), expiresAt } };
  }

  /**
   * Check a token shown for an account. A well-formed token always costs one HMAC, whether the name has
   * an account or not, and every condition is evaluated before the outcome is chosen: the check takes
   * the same steps for a name with an account and one without.
   *
   * @param token The token as shown (base64).
   * @param subject The account the LOGIN names, as the store holds it (or the mock one).
   * @param now Current time, ms.
   * @returns The valid token, or why it is not.
   */
  async check(token: string, subject: DeviceTokenSubject, now: number): Promise<DeviceTokenCheck> {
    const bytes = decodeBase64(token);
    if (bytes === null || bytes.length !== DEVICE_TOKEN_BYTES || bytes[0] !== DEVICE_TOKEN_VERSION) {
      return { ok: false, fault: "malformed" };
    }
    const view = new DataView(bytes.buffer);
    const accountId = view.getBigUint64(1);
    const expiresAt = Number(view.getBigUint64(17));
    const tagOk = constantTimeEqual(await this.#tag(bytes, subject), bytes.subarray(SIGNED_BYTES));
    const accountOk = subject.accountId !== null && accountId === BigInt(subject.accountId);
    const fresh = now < expiresAt;
    if (!tagOk || !accountOk) return { ok: false, fault: "invalid" };
    if (!fresh) return { ok: false, fault: "expired" };
    return { ok: true, token: { id: tokenId(bytes), expiresAt } };
  }
}

/** The token id of a token's bytes, in hex. */
function tokenId(bytes: Uint8Array): string {
  return bytes.subarray(25, 25 + ID_BYTES).toHex();
}
