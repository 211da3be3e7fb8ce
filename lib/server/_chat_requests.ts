/**
 * The chat requests of a logged-in session: LIST, PEER and IDENTITY, and the
 * identity key a REGISTER may carry.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { LIST_PAGE } from "../codec/messages.ts";
import type { ClientMessageOf, KeyBackupMessage, ServerMessageOf } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import type { IdentityRecord } from "../store/user_store.ts";
import type { LoggedIn } from "./_replies.ts";
import type { PendingExchange } from "./_scram_exchange.ts";
import type { OnlineUser } from "./presence.ts";
import type { SessionContext } from "./session_context.ts";

/** A checked identity key with its backup as stored. */
export interface CheckedIdentity {
  record: IdentityRecord;
  fingerprint: string;
}

/**
 * Check an identity key and backup sent by a client.
 *
 * @param identity The `key` (base64 of 32 bytes) and the sealed `backup`.
 * @returns The record to store and the key's fingerprint.
 * @throws {ProtocolError} `BAD_MESSAGE` when the key is not 32 bytes.
 */
export async function checkIdentity(
  identity: { key: string; backup: KeyBackupMessage },
): Promise<CheckedIdentity> {
  const key = decodeBase64(identity.key);
  if (!key || key.length !== 32) {
    throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.key: an Ed25519 public key is 32 bytes");
  }
  return { record: { key, backup: backupText(identity.backup) }, fingerprint: await fingerprint(key) };
}

/**
 * A key backup as stored: re-serialised from the validated fields, so only known fields, in a fixed order.
 *
 * @param b The validated backup.
 * @returns JSON text.
 */
export function backupText(b: KeyBackupMessage): string {
  return JSON.stringify({ v: b.v, kdf: b.kdf, m: b.m, t: b.t, p: b.p, salt: b.salt, iv: b.iv, ct: b.ct });
}

/**
 * The LOGIN reply after a correct proof: the identity key and its sealed backup, the UDP
 * rendezvous handle (the session is registered with the rendezvous here), and a device token. An account
 * that must change its password gets `must_change_password` instead of the rendezvous: its session is not
 * online until its PASSWD (see {@linkcode udpFields}). Its identity backup, if it has one, is still sent:
 * the client must re-seal it under the new password.
 *
 * @param ctx The server's shared state.
 * @param sessionId The session logging in.
 * @param pending The login exchange, its proof checked and committed.
 * @param done The server-final-message, the account's identity key as the login was recorded, and the
 *   device token issued for this login.
 * @returns The reply, and the identity fields of the login.
 */
export async function loginReply(
  ctx: SessionContext,
  sessionId: number,
  pending: PendingExchange,
  done: { serverFinal: string; identity: IdentityRecord | null; deviceToken: string },
): Promise<{
  reply: ServerMessageOf<"LOGIN">;
  identity: { identityKey: Uint8Array | null; fingerprint: string | null };
}> {
  const reply: ServerMessageOf<"LOGIN"> = { op: "LOGIN", user: pending.name, data: done.serverFinal };
  const identity = done.identity;
  if (identity) {
    reply.identity = {
      key: encodeBase64(identity.key),
      backup: JSON.parse(identity.backup) as KeyBackupMessage,
    };
  }
  if (pending.mustChangePassword) reply.must_change_password = true;
  else {
    const udp = await udpFields(ctx, sessionId, pending);
    if (udp) reply.udp = udp;
  }
  reply.device_token = done.deviceToken;
  return {
    reply,
    identity: identity
      ? { identityKey: identity.key, fingerprint: await fingerprint(new Uint8Array(identity.key)) }
      : { identityKey: null, fingerprint: null },
  };
}

/**
 * Register a session with the UDP rendezvous, keyed by the session key of the exchange that put it online:
 * its LOGIN, or, for an account that had to change its password, the PASSWD that lifted the restriction.
 *
 * @param ctx The server's shared state.
 * @param sessionId The session.
 * @param pending The exchange, its proof checked and committed.
 * @returns The `udp` field of the reply, or `undefined` when the server serves no UDP.
 */
export async function udpFields(
  ctx: SessionContext,
  sessionId: number,
  pending: PendingExchange,
): Promise<ServerMessageOf<"LOGIN">["udp"]> {
  const sessionKey = pending.exchange.sessionKey;
  if (!ctx.rendezvous || !sessionKey) return undefined;
  const udp = await ctx.rendezvous.register(sessionId, pending.key, sessionKey);
  return { port: ctx.rendezvous.port, handle: udp.handle, relay_id: udp.relayId };
}

/**
 * Register the identity key of an account that has none (made at the first login of an account
 * created without one, such as a seeded or imported account).
 *
 * @param ctx The server's shared state.
 * @param me The login; updated with the key.
 * @param msg The request.
 * @returns The reply.
 * @throws {ProtocolError} `BAD_MESSAGE` or `IDENTITY_EXISTS`.
 */
export async function registerIdentity(
  ctx: SessionContext,
  me: LoggedIn,
  msg: ClientMessageOf<"IDENTITY">,
): Promise<ServerMessageOf<"IDENTITY">> {
  const checked = await checkIdentity(msg);
  if (!await ctx.store.setIdentity(me.id, me.verifier, checked.record)) {
    const record = await ctx.store.findUser(me.key);
    if (record?.identityKey) {
      throw new ProtocolError("IDENTITY_EXISTS", `Identity key already registered for ${me.name}`);
    }
    throw new ProtocolError(
      "AUTH_FAILED",
      "Password changed meanwhile: log in again, so the key is sealed under the current password",
    );
  }
  me.identityKey = checked.record.key;
  me.fingerprint = checked.fingerprint;
  // The key belongs to the account: every session of the user is listed with it from now on.
  ctx.presence.update(onlineUser(me));
  ctx.log.info("identity", { user: me.name, fingerprint: checked.fingerprint });
  return { op: "IDENTITY", key: msg.key, fingerprint: checked.fingerprint };
}

/**
 * The presence entry of a logged-in session.
 *
 * @param me The login.
 * @returns The online user.
 */
export function onlineUser(me: LoggedIn): OnlineUser {
  return { key: me.key, name: me.name, identityKey: me.identityKey, fingerprint: me.fingerprint };
}

/**
 * The LIST reply: one page of online users.
 *
 * @param ctx The server's shared state.
 * @param after Cursor from the previous page.
 * @returns The message.
 */
export function listReply(ctx: SessionContext, after: string | undefined): ServerMessageOf<"LIST"> {
  const page = ctx.presence.list(after, LIST_PAGE);
  const reply: ServerMessageOf<"LIST"> = {
    op: "LIST",
    users: page.users.map((u) =>
      u.identityKey && u.fingerprint
        ? { user: u.name, key: encodeBase64(u.identityKey), fingerprint: u.fingerprint }
        : { user: u.name }
    ),
  };
  if (page.next !== undefined) reply.next = page.next;
  return reply;
}

/**
 * The PEER reply: where and how to reach a user.
 *
 * @param ctx The server's shared state.
 * @param name The user asked for.
 * @returns The message.
 * @throws {ProtocolError} `INVALID_USERNAME`, `UNKNOWN_USER` or `USER_OFFLINE`.
 */
export async function peerReply(ctx: SessionContext, name: string): Promise<ServerMessageOf<"PEER">> {
  const { key } = prepareUsername(name);
  const online = ctx.presence.get(key);
  if (!online) {
    if (!await ctx.store.findUser(key)) throw new ProtocolError("UNKNOWN_USER", `No such user: ${name}`);
    throw new ProtocolError("USER_OFFLINE", `User is offline: ${name}`);
  }
  if (!online.identityKey || !online.fingerprint) {
    throw new ProtocolError(
      "USER_OFFLINE",
      `User cannot receive messages yet: ${online.name} has no identity key (it is made at their next login)`,
    );
  }
  const endpoint = ctx.rendezvous?.endpointOf(key) ?? null;
  if (!endpoint) {
    throw new ProtocolError("USER_OFFLINE", `User is online but not reachable over UDP: ${online.name}`);
  }
  return {
    op: "PEER",
    user: online.name,
    key: encodeBase64(online.identityKey),
    fingerprint: online.fingerprint,
    relay_id: endpoint.relayId,
    address: endpoint.hostname,
    port: endpoint.port,
  };
}
