/**
 * The client's side of identity keys: made at registration (or at the first
 * login of an account that has none), backed up on the server only sealed
 * under the password with Argon2id, recovered at every login, re-sealed when
 * the password changes. The password is SASLprepped first, as SCRAM does, so
 * the same typed password always opens the backup.
 *
 * @module
 */

import { saslPrep } from "../auth/saslprep.ts";
import { prepareUsername } from "../auth/username.ts";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import type { KeyBackupMessage, ServerMessageOf } from "../codec/messages.ts";
import { exportIdentityPrivate, generateIdentity, importIdentity } from "../crypto/identity_key.ts";
import type { Identity } from "../crypto/identity_key.ts";
import { openKeyBackup, sealKeyBackup } from "../crypto/key_backup.ts";
import type { KeyBackup } from "../crypto/key_backup.ts";
import { remember } from "./_memo.ts";

/** An identity key as registered: public key and sealed backup. */
export interface IdentityMessage {
  key: string;
  backup: KeyBackupMessage;
}

function binding(user: string, publicKey: Uint8Array): { user: string; publicKey: Uint8Array } {
  return { user: prepareUsername(user).key, publicKey };
}

/**
 * Seal an identity's private key under a password.
 *
 * @param identity The identity.
 * @param user The account name.
 * @param password The password as typed.
 * @returns What REGISTER, IDENTITY and PASSWD carry.
 */
export async function sealIdentity(
  identity: Identity,
  user: string,
  password: string,
): Promise<IdentityMessage> {
  const pkcs8 = await exportIdentityPrivate(identity);
  try {
    const backup = await sealKeyBackup(
      pkcs8,
      saslPrep(password, { allowUnassigned: true }),
      binding(user, identity.publicKey),
    );
    return { key: encodeBase64(identity.publicKey), backup };
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * Make a new identity and seal it.
 *
 * @param user The account name.
 * @param password The password as typed.
 * @returns The identity and its message.
 */
export async function newIdentity(
  user: string,
  password: string,
): Promise<{ identity: Identity; message: IdentityMessage }> {
  const identity = await generateIdentity();
  return { identity, message: await sealIdentity(identity, user, password) };
}

/**
 * Open the backup the server returned at login.
 *
 * @param user The account name.
 * @param password The password as typed.
 * @param message The public key and backup.
 * @returns The identity.
 * @throws {TypeError} When the backup does not open or does not match the key.
 * @throws {RangeError} When the server asks for absurd Argon2id parameters.
 */
export async function recoverIdentity(
  user: string,
  password: string,
  message: IdentityMessage,
): Promise<Identity> {
  const publicKey = decodeBase64(message.key);
  if (!publicKey || publicKey.length !== 32) {
    throw new TypeError("Identity key from the server is not 32 bytes");
  }
  const pkcs8 = await openKeyBackup(
    message.backup as KeyBackup,
    saslPrep(password, { allowUnassigned: true }),
    binding(user, publicKey),
  );
  try {
    return await importIdentity(pkcs8, new Uint8Array(publicKey));
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * Identity keys already opened, by account and backup: a client that logs in again (on the same or a new
 * connection) and gets the same backup has the key without another Argon2id. The backup is opened only
 * after a correct login, and the same backup always opens to the same key, so the cache cannot be fooled
 * into a key the password would not open.
 */
export type IdentityCache = Map<string, Identity>;

/** Entries an {@linkcode IdentityCache} keeps at most (the oldest go first). */
const MAX_CACHED_IDENTITIES = 1024;

function cacheKey(user: string, message: IdentityMessage): string {
  // The ciphertext names the backup: a new seal (another password, salt or key) is another ciphertext.
  return `${prepareUsername(user).key}\0${message.key}\0${message.backup.ct}`;
}

function cached(cache: IdentityCache | undefined, key: string, identity: Identity): Identity {
  return cache ? remember(cache, key, identity, MAX_CACHED_IDENTITIES) : identity;
}

/** What a login gives the chat side: the identity key and the UDP rendezvous credentials. */
export interface ChatCredentials {
  /** The account name as stored. */
  user: string;
  /** The recovered (or new) identity key; `null` with `identityError` when it could not be had. */
  identity: Identity | null;
  /** Why there is no identity key. */
  identityError?: string;
  /** UDP rendezvous: port, handle and relay id from the server, and the key the SCRAM exchange made. */
  udp: { port: number; handle: string; relayId: number; key: Uint8Array<ArrayBuffer> } | null;
}

/** What a reply that puts a session online gives chat: LOGIN's, or a PASSWD's that lifted a restriction. */
export type OnlineGrant =
  & Pick<ServerMessageOf<"LOGIN">, "user" | "identity" | "udp">
  & { sessionKey: Uint8Array<ArrayBuffer> | null };

/**
 * The chat side of a successful login: the identity key recovered from its backup (or made and
 * registered, for an account that has none yet) and the UDP credentials. A key that cannot be had
 * leaves the login standing, with the reason in `identityError`.
 *
 * @param reply The reply (LOGIN, or the PASSWD that lifted a restriction), with its exchange's session key.
 * @param password The password as typed.
 * @param register Sends IDENTITY for a new key.
 * @param cache Keys already opened, if the client keeps them.
 * @returns The credentials.
 */
export async function chatCredentials(
  reply: OnlineGrant,
  password: string,
  register: (message: IdentityMessage) => Promise<void>,
  cache?: IdentityCache,
): Promise<ChatCredentials> {
  const chat: ChatCredentials = { user: reply.user, identity: null, udp: udpCredentials(reply) };
  try {
    if (reply.identity) {
      chat.identity = await openIdentity(reply.user, password, reply.identity, cache);
    } else {
      // An account made without one (seeded, imported): its first login makes it.
      const made = await newIdentity(reply.user, password);
      await register(made.message);
      // The server stores the backup as re-serialised from its fields: the same key text it will send back.
      chat.identity = cached(cache, cacheKey(reply.user, made.message), made.identity);
    }
  } catch (err) {
    chat.identityError = `No identity key: ${(err as Error).message}`;
  }
  return chat;
}

/**
 * Open an identity backup the server returned, from the cache when it was opened before.
 *
 * @param user The account name.
 * @param password The password as typed.
 * @param message The public key and backup.
 * @param cache Keys already opened, if the client keeps them.
 * @returns The identity.
 * @throws {TypeError} When the backup does not open or does not match the key.
 * @throws {RangeError} When the server asks for absurd Argon2id parameters.
 */
export async function openIdentity(
  user: string,
  password: string,
  message: IdentityMessage,
  cache?: IdentityCache,
): Promise<Identity> {
  const key = cacheKey(user, message);
  return cache?.get(key) ?? cached(cache, key, await recoverIdentity(user, password, message));
}

/**
 * The UDP rendezvous credentials of a reply that put the session online (LOGIN, or the PASSWD that lifted
 * a must-change-password restriction), with the session key its SCRAM exchange made.
 *
 * @param reply The reply's `udp` field and the exchange's session key.
 * @returns The credentials, or `null` when the server serves no UDP.
 */
export function udpCredentials(
  reply: { udp?: ServerMessageOf<"LOGIN">["udp"]; sessionKey: Uint8Array<ArrayBuffer> | null },
): ChatCredentials["udp"] {
  return reply.udp && reply.sessionKey
    ? { port: reply.udp.port, handle: reply.udp.handle, relayId: reply.udp.relay_id, key: reply.sessionKey }
    : null;
}
