/**
 * How a new password (REGISTER, PASSWD) reaches the server: in clear only on a
 * confidential channel, otherwise sealed to the server key and this session's
 * single-use seal nonce (docs/PROTOCOL.md, "Sealing").
 *
 * @module
 */

import { encodeBase64 } from "../codec/base64.ts";
import type { Sealed } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { openSealed, sealContext } from "../crypto/seal.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A new seal nonce: 18 random bytes, base64.
 *
 * @returns The nonce.
 */
export function freshSealNonce(): string {
  return encodeBase64(crypto.getRandomValues(new Uint8Array(18)));
}

/**
 * A session's side of new passwords: its channel, the server's sealing key and the single-use seal nonce.
 *
 * @example
 * ```ts
 * import { SessionSecrets } from "./_new_password.ts";
 * const key = (await crypto.subtle.generateKey(
 *   { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
 *   false,
 *   ["decrypt"],
 * ) as CryptoKeyPair).privateKey;
 * const secrets = new SessionSecrets({ confidential: false, peerAddress: "10.0.0.1" }, key);
 * const nonce = secrets.renewSealNonce();
 * console.assert(secrets.takeSealNonce() === nonce && secrets.takeSealNonce() === null);
 * ```
 */
export class SessionSecrets implements NewPasswordSource {
  /** Whether the channel is TLS. */
  readonly confidential: boolean;
  /** Source address (for the registration budget). */
  readonly peerAddress: string;
  /** The server's sealing private key. */
  readonly sealPrivateKey: CryptoKey;
  #nonce: string | null = null;

  /**
   * Make the holder.
   *
   * @param info Channel and source address.
   * @param sealPrivateKey The server's sealing private key.
   */
  constructor(info: { confidential: boolean; peerAddress: string }, sealPrivateKey: CryptoKey) {
    this.confidential = info.confidential;
    this.peerAddress = info.peerAddress;
    this.sealPrivateKey = sealPrivateKey;
  }

  /**
   * Replace the seal nonce (every HELLO does): a secret sealed to an older one no longer opens.
   *
   * @returns The new nonce.
   */
  renewSealNonce(): string {
    this.#nonce = freshSealNonce();
    return this.#nonce;
  }

  takeSealNonce(): string | null {
    const nonce = this.#nonce;
    this.#nonce = null;
    return nonce;
  }
}

/** What the session supplies. */
export interface NewPasswordSource {
  /** Whether the channel is TLS. */
  confidential: boolean;
  /** The server's sealing private key. */
  sealPrivateKey: CryptoKey;
  /** Hands over the current seal nonce and forgets it (single use), or `null` when none is left. */
  takeSealNonce(): string | null;
}

/**
 * Read the new password of a REGISTER or PASSWD message.
 *
 * @param op The command.
 * @param user The user the secret is bound to (REGISTER's `user`, or the logged-in name).
 * @param msg The message's `password` and `sealed` fields.
 * @param source Channel, key and nonce of the session.
 * @returns The password as typed.
 * @throws {ProtocolError} `BAD_MESSAGE`, `CONFIDENTIALITY_REQUIRED`, `SEAL_INVALID` or `BAD_ENCODING`.
 */
export async function readNewPassword(
  op: "REGISTER" | "PASSWD",
  user: string,
  msg: { password?: string; sealed?: Sealed },
  source: NewPasswordSource,
): Promise<string> {
  if (msg.password !== undefined && msg.sealed !== undefined) {
    throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.password: send password or sealed, not both");
  }
  if (msg.password !== undefined) {
    if (!source.confidential) {
      throw new ProtocolError(
        "CONFIDENTIALITY_REQUIRED",
        "Password in clear on a plain connection: seal it to the server key or use TLS",
      );
    }
    return msg.password;
  }
  if (msg.sealed === undefined) {
    throw new ProtocolError("BAD_MESSAGE", `Invalid field msg.sealed: ${op} needs password (TLS) or sealed`);
  }
  const nonce = source.takeSealNonce();
  if (nonce === null) {
    throw new ProtocolError("SEAL_INVALID", "No seal nonce in this session: send HELLO for a fresh one");
  }
  const bytes = await openSealed(source.sealPrivateKey, msg.sealed, sealContext(op, { user, nonce }));
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ProtocolError("BAD_ENCODING", "Invalid UTF-8 in the sealed password");
  } finally {
    bytes.fill(0);
  }
}
