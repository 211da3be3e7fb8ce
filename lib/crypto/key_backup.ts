/**
 * Password-sealed backup of an identity private key, so the server can keep
 * it for the user without being able to read it: Argon2id stretches the
 * password into an AES-256-GCM key, and the associated data binds the backup
 * to one user and one public key.
 *
 * @module
 */

import { argon2id } from "hash-wasm";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";

/** A sealed identity private key; a plain JSON-able object. */
export interface KeyBackup {
  v: 1;
  kdf: "argon2id";
  /** Argon2id memory in KiB. */
  m: number;
  /** Argon2id passes. */
  t: number;
  /** Argon2id lanes. */
  p: number;
  /** Base64 of the 16-byte salt. */
  salt: string;
  /** Base64 of the 12-byte AES-GCM nonce. */
  iv: string;
  /** Base64 of the AES-GCM output, tag included. */
  ct: string;
}

/** Argon2id cost parameters. */
export interface KeyBackupParams {
  /** Memory in KiB. */
  m: number;
  /** Passes. */
  t: number;
  /** Lanes. */
  p: number;
}

/** What a backup is bound to: the AES-GCM associated data. */
export interface KeyBackupBinding {
  /** The user key; lower-cased before use. */
  user: string;
  /** The raw public key of the identity. */
  publicKey: Uint8Array;
}

/** OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane. */
export const KEY_BACKUP_DEFAULTS: Readonly<KeyBackupParams> = Object.freeze({ m: 19456, t: 2, p: 1 });
/** Largest accepted ciphertext, in bytes (an Ed25519 PKCS#8 key seals to 64). */
export const MAX_KEY_BACKUP_CT = 512;

// A backup comes from the server; these bounds stop it from making a client burn
// unbounded memory or time, and from making the client seal a toothless backup.
const BOUNDS = { m: [8192, 262144], t: [1, 10], p: [1, 4] } as const;
const KEYS = ["v", "kdf", "m", "t", "p", "salt", "iv", "ct"];
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const OPEN_FAILED = "Key backup did not open: wrong password or altered backup";
const encoder = new TextEncoder();

/**
 * Tell whether a value has the shape of a key backup: exactly the expected
 * fields, version 1, integer parameters, a 16-byte salt, a 12-byte nonce and
 * a ciphertext of 16 to {@linkcode MAX_KEY_BACKUP_CT} bytes, all in strict
 * base64. Parameter bounds are checked by {@linkcode checkKeyBackupParams}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isKeyBackup } from "./key_backup.ts";
 * assert(!isKeyBackup({ v: 1 }));
 * ```
 *
 * @param value Anything, typically parsed JSON.
 * @returns Whether it is a well-formed backup.
 */
export function isKeyBackup(value: unknown): value is KeyBackup {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length !== KEYS.length || !KEYS.every((k) => Object.hasOwn(value, k))) return false;
  const b = value as Record<string, unknown>;
  if (b.v !== 1 || b.kdf !== "argon2id") return false;
  if (![b.m, b.t, b.p].every((n) => Number.isSafeInteger(n))) return false;
  if (typeof b.salt !== "string" || typeof b.iv !== "string" || typeof b.ct !== "string") return false;
  // Bound the text before decoding so a huge string costs nothing.
  if (b.ct.length > Math.ceil(MAX_KEY_BACKUP_CT / 3) * 4) return false;
  const ct = decodeBase64(b.ct);
  return decodeBase64(b.salt)?.length === SALT_BYTES && decodeBase64(b.iv)?.length === IV_BYTES &&
    ct !== null && ct.length >= TAG_BYTES && ct.length <= MAX_KEY_BACKUP_CT;
}

/**
 * Check Argon2id parameters against the accepted bounds: m 8192..262144 KiB,
 * t 1..10, p 1..4.
 *
 * @example
 * ```ts
 * import { checkKeyBackupParams, KEY_BACKUP_DEFAULTS } from "./key_backup.ts";
 * checkKeyBackupParams(KEY_BACKUP_DEFAULTS);
 * ```
 *
 * @param params The parameters.
 * @throws {RangeError} When one is not an integer within its bounds.
 */
export function checkKeyBackupParams(params: KeyBackupParams): void {
  for (const name of ["m", "t", "p"] as const) {
    const [min, max] = BOUNDS[name];
    const value = params[name];
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`Key backup parameter out of bounds: ${name}=${value}, expected ${min}..${max}`);
    }
  }
}

/**
 * Seal an identity private key under a password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isKeyBackup, sealKeyBackup } from "./key_backup.ts";
 * const backup = await sealKeyBackup(new Uint8Array(48), "pw", { user: "alice", publicKey: new Uint8Array(32) });
 * assert(isKeyBackup(backup));
 * ```
 *
 * @param pkcs8 The private key (PKCS#8 DER).
 * @param password The user's password.
 * @param binding The user and public key the backup belongs to.
 * @param params Argon2id costs; OWASP's recommendation by default.
 * @returns The backup.
 * @throws {RangeError} For parameters out of bounds, an empty password or a key too large.
 */
export async function sealKeyBackup(
  pkcs8: Uint8Array<ArrayBuffer>,
  password: string,
  binding: KeyBackupBinding,
  params: KeyBackupParams = KEY_BACKUP_DEFAULTS,
): Promise<KeyBackup> {
  checkKeyBackupParams(params);
  if (password.length === 0) throw new RangeError("Key backup password must not be empty");
  if (pkcs8.length + TAG_BYTES > MAX_KEY_BACKUP_CT) {
    throw new RangeError(`Key too large for a backup: ${pkcs8.length} bytes`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const key = await deriveKey(password, salt, params, "encrypt");
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: context(binding) }, key, pkcs8),
  );
  const { m, t, p } = params;
  return {
    v: 1,
    kdf: "argon2id",
    m,
    t,
    p,
    salt: encodeBase64(salt),
    iv: encodeBase64(iv),
    ct: encodeBase64(ct),
  };
}

/**
 * Open a key backup with a password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openKeyBackup, sealKeyBackup } from "./key_backup.ts";
 * const binding = { user: "alice", publicKey: new Uint8Array(32) };
 * const backup = await sealKeyBackup(new Uint8Array([1, 2]), "pw", binding);
 * assert((await openKeyBackup(backup, "pw", binding)).length === 2);
 * ```
 *
 * @param backup The backup, as received (its shape is checked).
 * @param password The user's password.
 * @param binding The user and public key the backup must belong to.
 * @returns The private key (PKCS#8 DER).
 * @throws {TypeError} When the backup is malformed, or does not open (wrong
 *   password, or any field or the binding altered): the same message for every cause.
 * @throws {RangeError} When its parameters are out of bounds.
 */
export async function openKeyBackup(
  backup: KeyBackup,
  password: string,
  binding: KeyBackupBinding,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!isKeyBackup(backup)) throw new TypeError("Invalid key backup: malformed fields");
  checkKeyBackupParams(backup);
  if (password.length === 0) throw new TypeError(OPEN_FAILED);
  // isKeyBackup has decoded all three already.
  const salt = decodeBase64(backup.salt)!;
  const iv = decodeBase64(backup.iv)!;
  const ct = decodeBase64(backup.ct)!;
  const key = await deriveKey(password, salt, backup, "decrypt");
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: context(binding) }, key, ct),
    );
  } catch {
    throw new TypeError(OPEN_FAILED);
  }
}

function context(binding: KeyBackupBinding): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    JSON.stringify(["authchat-key-backup/1", binding.user.toLowerCase(), encodeBase64(binding.publicKey)]),
  );
}

async function deriveKey(
  password: string,
  salt: Uint8Array,
  params: KeyBackupParams,
  usage: "encrypt" | "decrypt",
): Promise<CryptoKey> {
  const secret = encoder.encode(password);
  const raw = await argon2id({
    password: secret,
    salt,
    memorySize: params.m,
    iterations: params.t,
    parallelism: params.p,
    hashLength: 32,
    outputType: "binary",
  });
  secret.fill(0);
  // WebCrypto wants an ArrayBuffer-backed view; both copies are zeroed.
  const bytes = new Uint8Array(raw);
  raw.fill(0);
  try {
    return await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, [usage]);
  } finally {
    bytes.fill(0);
  }
}
