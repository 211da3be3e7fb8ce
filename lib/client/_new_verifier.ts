/**
 * The client's side of new passwords (REGISTER, PASSWD): the policy the server announced is checked, the
 * SCRAM verifier is computed here, so the password never leaves the client, and the verifier travels in
 * clear inside TLS, else sealed to the server's pinned sealing key and a single-use nonce of the session
 * (docs/PROTOCOL.md section 5).
 *
 * @module
 */

import { checkPassword } from "../auth/password_policy.ts";
import { prepareUsername } from "../auth/username.ts";
import { decodeBase64 } from "../codec/base64.ts";
import type { Sealed, ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import { createVerifier, formatVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import { importSealPublicKey, seal, sealContext } from "../crypto/seal.ts";
import { memo } from "./_memo.ts";
import { endpointName } from "./endpoint.ts";
import { checkServerKey } from "./server_trust.ts";
import type { TrustOptions } from "./server_trust.ts";

const encoder = new TextEncoder();

/** Sealing keys already imported, by fingerprint: a client that reconnects need not import the key again. */
const sealKeys = new Map<string, Promise<CryptoKey>>();

/**
 * The sealing key a plain-TCP server sent in HELLO, once it is trusted.
 *
 * @param hello The HELLO reply.
 * @param endpoint The server, as the known-hosts file names it.
 * @param trust How server keys are trusted.
 * @returns The imported key.
 * @throws {TrustError} When the key is not trusted.
 * @throws {ProtocolError} `BAD_MESSAGE` when the key is not base64.
 */
export async function trustedSealKey(
  hello: ServerMessageOf<"HELLO">,
  endpoint: { host: string; port: number },
  trust: TrustOptions,
): Promise<CryptoKey> {
  const spki = decodeBase64(hello.seal_key);
  if (!spki) throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.seal_key: not base64");
  const seen = await fingerprint(spki);
  await checkServerKey("seal", endpointName(endpoint), seen, trust);
  return await memo(sealKeys, seen, () => importSealPublicKey(spki));
}

/** Where a new verifier goes. */
export interface VerifierChannel {
  /** The latest HELLO reply: the iteration count and minimum length to use. */
  hello: ServerMessageOf<"HELLO">;
  /** Whether the connection is TLS or a UDP session (confidential: the verifier goes in clear inside it). */
  tls: boolean;
  /** The trusted sealing key, on plain TCP. */
  sealKey: CryptoKey | null;
  /** A seal nonce of the session, used once. */
  takeNonce(): Promise<string>;
}

/**
 * Check a new password against the policy the server announced in HELLO (its minimum length), before
 * anything is computed or sent.
 *
 * @param user The account the password is for.
 * @param password The new password as typed.
 * @param hello The connection's HELLO reply.
 * @returns The SASLprepped password.
 * @throws {ProtocolError} `PASSWORD_POLICY` with the reason.
 */
export function checkNewPassword(
  user: string,
  password: string,
  hello: ServerMessageOf<"HELLO">,
): Promise<string> {
  return checkPassword(password, {
    minLength: hello.password_min_length,
    username: prepareUsername(user).name,
  });
}

/** What {@linkcode newVerifierFields} makes: the message fields, and the verifier itself. */
export interface NewVerifier {
  /** `verifier` on TLS, `sealed` on plain TCP. */
  fields: { verifier: string } | { sealed: Sealed };
  /** The verifier (the client keeps it to check the password locally later). */
  verifier: ScramVerifier;
}

/**
 * The verifier of a new password, as REGISTER or PASSWD send it.
 *
 * @param op The command.
 * @param user The account the password is for.
 * @param password The new password as typed.
 * @param channel The connection's HELLO, transport and sealing key.
 * @returns The message fields and the verifier.
 * @throws {ProtocolError} `PASSWORD_POLICY`, or `CONFIDENTIALITY_REQUIRED` without a trusted sealing key.
 */
export async function newVerifierFields(
  op: "REGISTER" | "PASSWD",
  user: string,
  password: string,
  channel: VerifierChannel,
): Promise<NewVerifier> {
  const prepared = await checkNewPassword(user, password, channel.hello);
  if (!channel.tls && !channel.sealKey) {
    throw new ProtocolError("CONFIDENTIALITY_REQUIRED", "No trusted sealing key for this server");
  }
  const verifier = await createVerifier(prepared, { iterations: channel.hello.iterations });
  const text = formatVerifier(verifier);
  if (channel.tls) return { fields: { verifier: text }, verifier };
  const nonce = await channel.takeNonce();
  const sealed = await seal(channel.sealKey!, encoder.encode(text), sealContext(op, { user, nonce }));
  return { fields: { sealed }, verifier };
}
