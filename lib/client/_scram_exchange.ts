/**
 * One SCRAM exchange of a client connection (LOGIN, PASSWD, DELETE): the first message, the proof, and the
 * check of the server's signature. A server that fails a check is not trusted with the connection any
 * longer: it is closed.
 *
 * @module
 */

import type { ChannelBindingType } from "../codec/scram_messages.ts";
import { ScramClient } from "../auth/scram_client.ts";
import type { SaltedPasswordCache } from "../auth/scram_client.ts";
import { SCRAM_SHA_256, SCRAM_SHA_256_PLUS } from "../auth/scram_server.ts";
import type { ClientMessage, ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import type { RequestChannel } from "./_request_channel.ts";

/** The connection an exchange runs on. */
export interface ScramConnection {
  channel: RequestChannel;
  /** The latest HELLO reply (read once `greeted` settles, when given). */
  hello(): ServerMessageOf<"HELLO">;
  /** The channel binding, on TLS and UDP sessions. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** Its type (default `tls-server-end-point`). */
  channelBindingType?: ChannelBindingType;
  /** Keys derived from SaltedPasswords, kept between exchanges. */
  cache: SaltedPasswordCache;
}

/**
 * Run one exchange.
 *
 * @param op The command that starts it.
 * @param user User name.
 * @param password Password.
 * @param extra Further fields of the first message (a new verifier, a key backup).
 * @param connection The connection.
 * @param greeted When the first message goes out before HELLO is answered: settles with the HELLO reply
 *   (and the check of the server's keys). The exchange then assumes the mechanism the transport calls for
 *   and goes on only if the server offers it.
 * @returns The server's reply to the proof, the session key the exchange made, and the verifier it proved.
 * @throws {ProtocolError} A refusal, or `CHANNEL_BINDING` when the server does not offer the mechanism.
 */
export async function scramExchange<K extends "LOGIN" | "PASSWD" | "DELETE">(
  op: K,
  user: string,
  password: string,
  extra: Record<string, unknown>,
  connection: ScramConnection,
  greeted?: Promise<void>,
): Promise<
  ServerMessageOf<K> & { sessionKey: Uint8Array<ArrayBuffer> | null; verifier: ScramVerifier | null }
> {
  const { channel, channelBinding, channelBindingType } = connection;
  const expected = channelBinding ? [SCRAM_SHA_256_PLUS] : [SCRAM_SHA_256];
  const client = new ScramClient({
    username: user,
    password,
    serverMechanisms: greeted ? expected : connection.hello().mechanisms,
    cache: connection.cache,
    ...(channelBinding ? { channelBinding } : {}),
    ...(channelBinding && channelBindingType ? { channelBindingType } : {}),
  });
  const challenged = channel.request(
    { op, mechanism: client.mechanism, data: client.first, ...extra } as ClientMessage,
    "CHALLENGE",
  );
  if (greeted) {
    challenged.catch(() => {});
    await greeted;
    if (!connection.hello().mechanisms.includes(client.mechanism)) {
      await channel.shut("Server does not offer the mechanism");
      throw new ProtocolError(
        "CHANNEL_BINDING",
        `Server did not offer ${client.mechanism}: refusing a possible downgrade`,
      );
    }
  }
  const challenge = await challenged;
  // A server that asks for an absurd iteration count, or cannot prove it knows the verifier, is not
  // trusted with this connection any longer.
  const distrustOnFailure = async <T>(check: () => T | Promise<T>): Promise<T> => {
    try {
      return await check();
    } catch (err) {
      await channel.shut(`Server failed authentication checks: ${(err as Error).message}`);
      throw err;
    }
  };
  const final = await distrustOnFailure(() => client.final(challenge.data));
  const reply = await channel.request({ op: "PROOF", data: final }, op);
  await distrustOnFailure(() => client.verify(reply.data));
  return { ...reply, sessionKey: client.sessionKey, verifier: client.verifier };
}
