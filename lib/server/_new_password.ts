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
