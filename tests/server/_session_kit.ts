/**
 * Drives session engines without sockets: an in-memory store, a fake clock,
 * captured logs, and a connection stand-in that collects outputs.
 *
 * @module
 */

import { LoginBudget } from "../../lib/auth/login_budget.ts";
import { RateLimiter } from "../../lib/auth/rate_limiter.ts";
import { saslPrep } from "../../lib/auth/saslprep.ts";
import { TokenBucket } from "../../lib/auth/token_bucket.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";
import { decodeServerMessage } from "../../lib/codec/messages.ts";
import type {
  ClientMessage,
  KeyBackupMessage,
  Sealed,
  ServerMessage,
  ServerMessageOf,
} from "../../lib/codec/messages.ts";
import { importSealPublicKey, seal, sealContext } from "../../lib/crypto/seal.ts";
import { DeviceTokenKey } from "../../lib/crypto/device_token.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { Logger } from "../../lib/server/logger.ts";
import { Session } from "../../lib/server/session.ts";
import type { ConnectionInfo, SessionContext, SessionOutput } from "../../lib/server/session_context.ts";
import { SessionRegistry } from "../../lib/server/session_registry.ts";
import { LocalPresence } from "../../lib/server/presence.ts";
import { LocalAbuseLimits, NO_OTHER_NODES } from "../../lib/server/shared_parts.ts";
import type { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import { createAccount } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { IdentityRecord, UserRecord } from "../../lib/store/user_store.ts";

/** The kit's PBKDF2 iteration count (`scram_iterations`): HELLO announces it, new verifiers must use it. */
export const KIT_ITERATIONS = 4096;
/** The kit's shortest password (`password_min_length`). */
export const KIT_PASSWORD_MIN_LENGTH = 10;

/**
 * The verifier a client computes for a new password (what REGISTER and PASSWD carry instead of it).
 *
 * @param password The password as typed.
 * @param options Another iteration count or a fixed salt, for refusals (default: the kit's count, 16 random bytes).
 * @returns The verifier in PostgreSQL's format.
 */
export async function verifierFor(
  password: string,
  options: { iterations?: number; salt?: Uint8Array<ArrayBuffer> } = {},
): Promise<string> {
  return formatVerifier(
    await createVerifier(saslPrep(password), {
      iterations: options.iterations ?? KIT_ITERATIONS,
      ...(options.salt ? { salt: options.salt } : {}),
    }),
  );
}

let sealPair: Promise<CryptoKeyPair> | undefined;

/** One RSA-OAEP key pair per test process (generation takes a second or two). */
function sealKeys(): Promise<CryptoKeyPair> {
  sealPair ??= crypto.subtle.generateKey(
    { name: "RSA-OAEP", modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  );
  return sealPair;
}

/** A test server's shared state. */
export interface Kit extends AsyncDisposable {
  ctx: SessionContext;
  /** The failure counters behind `ctx.limits`, to look inside. */
  limiter: RateLimiter;
  store: SqliteUserStore;
  logs: string[];
  clock: { now: number };
  /** Add an account directly, with an identity key when given. */
  addUser(user: string, password: string, identity?: IdentityRecord): Promise<UserRecord>;
  /** Open a connection stand-in. */
  connect(info?: Partial<ConnectionInfo>): TestConnection;
}

/** Options of {@linkcode makeKit}. */
export interface KitOptions {
  freeFailures?: number;
  authTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxUnauthenticatedPerIp?: number;
  maxConnectionsPerIp?: number;
  /** Most connections in all (default: no cap). */
  maxConnections?: number;
  registrationsPerMinute?: number;
  /** Successful logins per account per minute (default 10,000: tests log in often). */
  loginsPerMinutePerAccount?: number;
  /** Successful logins per source per minute (default 10,000). */
  loginsPerMinutePerSource?: number;
  keepaliveTimeoutMs?: number;
  rendezvous?: Rendezvous;
  /** PBKDF2 iteration count (default {@linkcode KIT_ITERATIONS}). */
  iterations?: number;
  /** Shortest password (default {@linkcode KIT_PASSWORD_MIN_LENGTH}). */
  passwordMinLength?: number;
}

/**
 * Make a kit.
 *
 * @param options Limits to use.
 * @returns The kit; dispose it to close the store.
 */
export async function makeKit(options: KitOptions = {}): Promise<Kit> {
  const store = SqliteUserStore.open(":memory:");
  const logs: string[] = [];
  const clock = { now: 1_800_000_000_000 };
  const pair = await sealKeys();
  const iterations = options.iterations ?? KIT_ITERATIONS;
  const passwordMinLength = options.passwordMinLength ?? KIT_PASSWORD_MIN_LENGTH;
  const mockSecret = await store.mockSecret();
  const limiter = new RateLimiter({
    freeFailures: options.freeFailures ?? 3,
    baseMs: 1000,
    maxMs: 60_000,
    forgetAfterMs: 3_600_000,
    maxEntries: 1000,
    maxParallel: options.maxUnauthenticatedPerIp ?? 100,
  });
  const ctx: SessionContext = {
    store,
    limits: new LocalAbuseLimits({
      limiter,
      registrations: new TokenBucket({ perMinute: options.registrationsPerMinute ?? 1000 }),
      logins: new LoginBudget({
        perAccountPerMinute: options.loginsPerMinutePerAccount ?? 10_000,
        perSourcePerMinute: options.loginsPerMinutePerSource ?? 10_000,
      }),
    }),
    sessions: NO_OTHER_NODES,
    registry: new SessionRegistry({
      maxUnauthenticatedPerIp: options.maxUnauthenticatedPerIp ?? 100,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? 1000,
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    }),
    presence: new LocalPresence(),
    rendezvous: options.rendezvous ?? null,
    log: new Logger({ format: "json", write: (line) => logs.push(line), now: () => clock.now }),
    now: () => clock.now,
    serverName: "test",
    iterations,
    passwordMinLength,
    authTimeoutMs: options.authTimeoutMs ?? 30_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 900_000,
    keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 15_000,
    sealPrivateKey: pair.privateKey,
    sealPublicKey: encodeBase64(new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey))),
    mockSecret,
    deviceTokens: await DeviceTokenKey.derive(mockSecret),
  };
  return {
    ctx,
    limiter,
    store,
    logs,
    clock,
    addUser: (user, password, identity) =>
      createAccount(store, { user, password, identity }, {
        iterations,
        minPasswordLength: passwordMinLength,
      }),
    connect: (info = {}) =>
      new TestConnection(ctx, { peerAddress: "10.0.0.1", transport: "tcp", confidential: false, ...info }),
    [Symbol.asyncDispose]: () => Promise.resolve(store.close()),
  };
}

/** A key backup of the right shape (the server checks the shape, never opens it). */
export const SAMPLE_BACKUP: KeyBackupMessage = {
  v: 1,
  kdf: "argon2id",
  m: 19456,
  t: 2,
  p: 1,
  salt: encodeBase64(new Uint8Array(16).fill(7)),
  iv: encodeBase64(new Uint8Array(12).fill(9)),
  ct: encodeBase64(new Uint8Array(64).fill(5)),
};

/** An identity as a client sends it: a random 32-byte public key (base64) and a backup. */
export interface TestIdentity {
  key: string;
  raw: Uint8Array<ArrayBuffer>;
  backup: KeyBackupMessage;
}

/**
 * A fresh identity key with a backup (the ciphertext varies with `tag`, so backups can be told apart).
 *
 * @param tag A byte mixed into the backup's ciphertext.
 * @returns The identity.
 */
export function testIdentity(tag = 5): TestIdentity {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  return {
    key: encodeBase64(raw),
    raw,
    backup: { ...SAMPLE_BACKUP, ct: encodeBase64(new Uint8Array(64).fill(tag)) },
  };
}

/**
 * The backup of a test identity as the store keeps it (fields in a fixed order).
 *
 * @param backup The backup sent.
 * @returns JSON text.
 */
export function storedBackup(backup: KeyBackupMessage): string {
  const { v, kdf, m, t, p, salt, iv, ct } = backup;
  return JSON.stringify({ v, kdf, m, t, p, salt, iv, ct });
}

/** Any server message but a PRESENCE notice: what a request can be answered with. */
export type Reply = Exclude<ServerMessage, { op: "PRESENCE" }>;

/**
 * The error code of a reply.
 *
 * @param reply What the server answered.
 * @returns Its `code` when it is an ERROR, else `undefined`.
 */
export function errorCode(reply: ServerMessage): string | undefined {
  return reply.op === "ERROR" ? reply.code : undefined;
}

/**
 * What the client's decoder makes of a reply: the server's output must pass the client's schema.
 *
 * @param reply What the server answered.
 * @returns The reply encoded and decoded again as the client does.
 * @throws {ProtocolError} When the client's schema refuses it.
 */
export function roundTrip(reply: ServerMessage): ServerMessage {
  return decodeServerMessage(new TextEncoder().encode(JSON.stringify(reply)));
}

/** What a successful {@linkcode TestConnection.login} returns. */
export interface LoginResult {
  reply: ServerMessageOf<"LOGIN">;
  /** The key the client side of the SCRAM exchange derived. */
  sessionKey: Uint8Array<ArrayBuffer>;
}

/**
 * A session with a sink that records what it sends. PRESENCE notices, which arrive whenever another
 * session logs in or out, are set aside in {@linkcode notices} so that request/reply assertions stay exact.
 */
export class TestConnection {
  readonly session: Session;
  readonly outputs: SessionOutput[] = [];
  /** Every PRESENCE notice received, in order. */
  readonly notices: ServerMessageOf<"PRESENCE">[] = [];
  readonly info: ConnectionInfo;
  #noticesRead = 0;
  #read = 0;
  #nextId = 1;
  hello: ServerMessage & { op: "HELLO" } | undefined;

  constructor(ctx: SessionContext, info: ConnectionInfo) {
    this.info = info;
    this.session = new Session(ctx, info, (o) => {
      if (o.kind === "send" && o.message.op === "PRESENCE") this.notices.push(o.message);
      else this.outputs.push(o);
    });
  }

  /** Whether the session asked to close. */
  get closed(): boolean {
    return this.outputs.some((o) => o.kind === "close");
  }

  /** PRESENCE notices received since the last call. */
  takeNotices(): ServerMessageOf<"PRESENCE">[] {
    const fresh = this.notices.slice(this.#noticesRead);
    this.#noticesRead = this.notices.length;
    return fresh;
  }

  /** Messages other than PRESENCE notices sent since the last call. */
  take(): Reply[] {
    const fresh = this.outputs.slice(this.#read);
    this.#read = this.outputs.length;
    return fresh.flatMap((o) => o.kind === "send" && o.message.op !== "PRESENCE" ? [o.message] : []);
  }

  /** Send raw payload bytes; return the messages it caused. */
  async raw(payload: Uint8Array | string): Promise<Reply[]> {
    await this.session.receive(typeof payload === "string" ? new TextEncoder().encode(payload) : payload);
    return this.take();
  }

  /** Send a message (an id is added when absent); return the one reply. */
  async send(msg: Record<string, unknown>): Promise<Reply> {
    const withId = "id" in msg ? msg : { ...msg, id: this.#nextId++ };
    const replies = await this.raw(JSON.stringify(withId));
    if (replies.length !== 1) throw new Error(`Expected one reply, got ${JSON.stringify(replies)}`);
    return replies[0]!;
  }

  /** HELLO. */
  async sayHello(): Promise<ServerMessage & { op: "HELLO" }> {
    const reply = await this.send({ op: "HELLO", version: 1 });
    if (reply.op !== "HELLO") throw new Error(`HELLO failed: ${JSON.stringify(reply)}`);
    this.hello = reply;
    return reply;
  }

  /**
   * Seal any text (a verifier, or anything a test wants the server to open) for REGISTER or PASSWD in this
   * session, to the current nonce (the server uses and forgets it).
   */
  async sealed(op: "REGISTER" | "PASSWD", user: string, text: string): Promise<Sealed> {
    const hello = this.hello ?? await this.sayHello();
    const key = await importSealPublicKey(decodeBase64(hello.seal_key)!);
    return await seal(
      key,
      new TextEncoder().encode(text),
      sealContext(op, { user, nonce: hello.seal_nonce }),
    );
  }

  /**
   * Run a whole SCRAM exchange.
   *
   * @returns The final reply and the client-final message sent.
   */
  async scram(
    op: "LOGIN" | "PASSWD" | "DELETE",
    user: string,
    password: string,
    options: { channelBinding?: Uint8Array<ArrayBuffer>; extra?: Record<string, unknown> } = {},
  ): Promise<{ reply: Reply; clientFinal?: string; challenge: Reply; client: ScramClient }> {
    const hello = this.hello ?? await this.sayHello();
    const client = new ScramClient({
      username: user,
      password,
      serverMechanisms: hello.mechanisms,
      ...(options.channelBinding ? { channelBinding: options.channelBinding } : {}),
    });
    const challenge = await this.send({
      op,
      mechanism: client.mechanism,
      data: client.first,
      ...options.extra,
    });
    if (challenge.op !== "CHALLENGE") return { reply: challenge, challenge, client };
    const clientFinal = await client.final(challenge.data);
    const reply = await this.send({ op: "PROOF", data: clientFinal });
    if (reply.op !== "ERROR") client.verify((reply as { data: string }).data);
    return { reply, clientFinal, challenge, client };
  }

  /**
   * Run a SCRAM exchange (SCRAM-SHA-256) up to the proof and hand the proof back unsent, for a test that
   * sends it later.
   *
   * @returns The client-final message, the `data` of the PROOF.
   * @throws {Error} When the server answers other than with a CHALLENGE.
   */
  async heldProof(op: "LOGIN" | "DELETE", user: string, password: string): Promise<string> {
    if (!this.hello) await this.sayHello();
    const client = new ScramClient({ username: user, password, serverMechanisms: ["SCRAM-SHA-256"] });
    const challenge = await this.send({ op, mechanism: "SCRAM-SHA-256", data: client.first });
    if (challenge.op !== "CHALLENGE") {
      throw new Error(`Expected a CHALLENGE, got ${JSON.stringify(challenge)}`);
    }
    return await client.final(challenge.data);
  }

  /** Log in or throw. */
  async login(user: string, password: string): Promise<LoginResult> {
    const { reply, client } = await this.scram("LOGIN", user, password);
    if (reply.op !== "LOGIN") throw new Error(`Login failed: ${JSON.stringify(reply)}`);
    const sessionKey = client.sessionKey;
    if (!sessionKey) throw new Error("Login succeeded but the client derived no session key");
    return { reply, sessionKey };
  }
}

/** The ClientMessage type, re-exported for tests building raw messages. */
export type { ClientMessage };
