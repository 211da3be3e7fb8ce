/**
 * The cookie master secret of UDP sessions (docs/PROTOCOL.md §20.2), derived rather than stored: HKDF-SHA-256
 * of the store's mock secret (empty salt, info {@linkcode COOKIE_MASTER_KDF_INFO}, 32 bytes). Every node
 * sharing the database has that secret, so each accepts the others' cookies, and no file is added.
 *
 * @module
 */

/** The HKDF `info` the cookie master secret is derived with. */
export const COOKIE_MASTER_KDF_INFO = "authchat-udp-cookie-master/1";

/**
 * Derive the cookie master secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deriveCookieMaster } from "./udp_cookie_master.ts";
 * const a = await deriveCookieMaster(new Uint8Array(32).fill(1));
 * const b = await deriveCookieMaster(new Uint8Array(32).fill(1));
 * assert(a.length === 32 && a.toHex() === b.toHex());
 * ```
 *
 * @param mockSecret The store's mock secret.
 * @returns 32 bytes.
 */
export async function deriveCookieMaster(
  mockSecret: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const base = await crypto.subtle.importKey("raw", mockSecret, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      info: new TextEncoder().encode(COOKIE_MASTER_KDF_INFO),
    },
    base,
    256,
  );
  return new Uint8Array(bits);
}
