/**
 * How the verifier of a new password (REGISTER, PASSWD) reaches the server: the
 * client computes it, so the password never does; it travels in clear only on
 * a confidential channel, otherwise sealed to the server key and this
 * session's single-use seal nonce (docs/PROTOCOL.md, "Sealing").
 *
 * @module
 */

import { encodeBase64 } from "../codec/base64.ts";
import type { Sealed } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { openSealed, sealContext } from "../crypto/seal.ts";
import { parseVerifier, SALT_BYTES } from "../crypto/scram_verifier.ts";

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
 * A session's side of new verifiers: its channel, the server's sealing key and the single-use seal nonce.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SessionSecrets } from "./_new_verifier.ts";
 * const key = (await crypto.subtle.generateKey(
 *   { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
 *   false,
 *   ["decrypt"],
 * ) as CryptoKeyPair).privateKey;
 * const secrets = new SessionSecrets({ confidential: false, peerAddress: "10.0.0.1" }, key);
 * const nonce = secrets.renewSealNonce();
 * assert(secrets.takeSealNonce() === nonce && secrets.takeSealNonce() === null);
 * ```
 */
export class SessionSecrets implements NewVerifierSource {
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
export interface NewVerifierSource {
  /** Whether the channel is TLS. */
  confidential: boolean;
  /** The server's sealing private key. */
  sealPrivateKey: CryptoKey;
  /** Hands over the current seal nonce and forgets it (single use), or `null` when none is left. */
  takeSealNonce(): string | null;
}

/** Longest salt accepted in a client's verifier. */
const MAX_SALT_BYTES = 64;

/**
 * Read the new verifier of a REGISTER or PASSWD message and check its form: the server's iteration count
 * (a client must not weaken it) and a salt of 16 to 64 bytes. The password behind it is the client's to
 * check against the policy; the server never sees it.
 *
 * @param op The command.
 * @param user The user the secret is bound to (REGISTER's `user`, or the logged-in name).
 * @param request The message's `verifier` and `sealed` fields, and the server's iteration count.
 * @param source Channel, key and nonce of the session.
 * @returns The verifier text, as it will be stored.
 * @throws {ProtocolError} `BAD_MESSAGE`, `CONFIDENTIALITY_REQUIRED`, `SEAL_INVALID` or `BAD_ENCODING`.
 */
export async function readNewVerifier(
  op: "REGISTER" | "PASSWD",
  user: string,
  request: { msg: { verifier?: string; sealed?: Sealed }; iterations: number },
  source: NewVerifierSource,
): Promise<string> {
  return checkVerifier(await readSecret(op, user, request.msg, source), request.iterations);
}

async function readSecret(
  op: "REGISTER" | "PASSWD",
  user: string,
  msg: { verifier?: string; sealed?: Sealed },
  source: NewVerifierSource,
): Promise<string> {
  if (msg.verifier !== undefined && msg.sealed !== undefined) {
    throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.verifier: send verifier or sealed, not both");
  }
  if (msg.verifier !== undefined) {
    if (!source.confidential) {
      throw new ProtocolError(
        "CONFIDENTIALITY_REQUIRED",
        "Verifier in clear on a plain connection: seal it to the server key or use TLS",
      );
    }
    return msg.verifier;
  }
  if (msg.sealed === undefined) {
    throw new ProtocolError("BAD_MESSAGE", `Invalid field msg.sealed: ${op} needs verifier (TLS) or sealed`);
  }
  const nonce = source.takeSealNonce();
  if (nonce === null) {
    throw new ProtocolError("SEAL_INVALID", "No seal nonce in this session: send HELLO for a fresh one");
  }
  const bytes = await openSealed(source.sealPrivateKey, msg.sealed, sealContext(op, { user, nonce }));
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ProtocolError("BAD_ENCODING", "Invalid UTF-8 in the sealed verifier");
  } finally {
    bytes.fill(0);
  }
}

function checkVerifier(text: string, iterations: number): string {
  let verifier;
  try {
    verifier = parseVerifier(text);
  } catch (err) {
    throw new ProtocolError("BAD_MESSAGE", `Invalid field msg.verifier: ${(err as Error).message}`);
  }
  if (verifier.iterations !== iterations) {
    throw new ProtocolError(
      "BAD_MESSAGE",
      `Invalid field msg.verifier: ${verifier.iterations} iterations, this server uses ${iterations} (see HELLO)`,
    );
  }
  if (verifier.salt.length < SALT_BYTES || verifier.salt.length > MAX_SALT_BYTES) {
    throw new ProtocolError(
      "BAD_MESSAGE",
      `Invalid field msg.verifier: a salt of ${verifier.salt.length} bytes, expected ${SALT_BYTES} to ${MAX_SALT_BYTES}`,
    );
  }
  return text;
}
