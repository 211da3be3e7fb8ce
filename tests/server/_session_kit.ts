/**
 * Drives session engines without sockets: an in-memory store, a fake clock,
 * captured logs, and a connection stand-in that collects outputs.
 *
 * @module
 */

import { RateLimiter } from "../../lib/auth/rate_limiter.ts";
import { TokenBucket } from "../../lib/auth/token_bucket.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";
import type { ClientMessage, Sealed, ServerMessage } from "../../lib/codec/messages.ts";
import { importSealPublicKey, seal, sealContext } from "../../lib/crypto/seal.ts";
import { Logger } from "../../lib/server/logger.ts";
import { Session } from "../../lib/server/session.ts";
import type { ConnectionInfo, SessionContext, SessionOutput } from "../../lib/server/session_context.ts";
import { SessionRegistry } from "../../lib/server/session_registry.ts";
import { createAccount } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";

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
  store: SqliteUserStore;
  logs: string[];
  clock: { now: number };
  /** Add an account directly. */
  addUser(user: string, password: string): Promise<void>;
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
  registrationsPerMinute?: number;
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
  const ctx: SessionContext = {
    store,
    limiter: new RateLimiter({
      freeFailures: options.freeFailures ?? 3,
      baseMs: 1000,
      maxMs: 60_000,
      forgetAfterMs: 3_600_000,
      maxEntries: 1000,
    }),
    registrations: new TokenBucket({ perMinute: options.registrationsPerMinute ?? 1000 }),
    registry: new SessionRegistry({
      maxUnauthenticatedPerIp: options.maxUnauthenticatedPerIp ?? 100,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? 1000,
    }),
    log: new Logger({ format: "json", write: (line) => logs.push(line), now: () => clock.now }),
    now: () => clock.now,
    serverName: "test",
    iterations: 4096,
    passwordMinLength: 10,
    authTimeoutMs: options.authTimeoutMs ?? 30_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 900_000,
    sealPrivateKey: pair.privateKey,
    sealPublicKey: encodeBase64(new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey))),
    mockSecret: await store.mockSecret(),
  };
  return {
    ctx,
    store,
    logs,
    clock,
    addUser: async (user, password) => {
      await createAccount(store, { user, password }, { iterations: 4096, minPasswordLength: 10 });
    },
    connect: (info = {}) =>
      new TestConnection(ctx, { peerAddress: "10.0.0.1", transport: "tcp", confidential: false, ...info }),
    [Symbol.asyncDispose]: () => Promise.resolve(store.close()),
  };
}

/** A session with a sink that records what it sends. */
export class TestConnection {
  readonly session: Session;
  readonly outputs: SessionOutput[] = [];
  readonly info: ConnectionInfo;
  #read = 0;
  #nextId = 1;
  hello: ServerMessage & { op: "HELLO" } | undefined;

  constructor(ctx: SessionContext, info: ConnectionInfo) {
    this.info = info;
    this.session = new Session(ctx, info, (o) => this.outputs.push(o));
  }

  /** Whether the session asked to close. */
  get closed(): boolean {
    return this.outputs.some((o) => o.kind === "close");
  }

  /** Messages sent since the last call. */
  take(): ServerMessage[] {
    const fresh = this.outputs.slice(this.#read);
    this.#read = this.outputs.length;
    return fresh.flatMap((o) => o.kind === "send" ? [o.message] : []);
  }

  /** Send raw payload bytes; return the messages it caused. */
  async raw(payload: Uint8Array | string): Promise<ServerMessage[]> {
    await this.session.receive(typeof payload === "string" ? new TextEncoder().encode(payload) : payload);
    return this.take();
  }

  /** Send a message (an id is added when absent); return the one reply. */
  async send(msg: Record<string, unknown>): Promise<ServerMessage> {
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

  /** Seal a password for REGISTER or PASSWD in this session (uses and forgets the current nonce). */
  async sealed(op: "REGISTER" | "PASSWD", user: string, password: string): Promise<Sealed> {
    const hello = this.hello ?? await this.sayHello();
    const key = await importSealPublicKey(decodeBase64(hello.seal_key)!);
    return await seal(
      key,
      new TextEncoder().encode(password),
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
  ): Promise<{ reply: ServerMessage; clientFinal?: string; challenge: ServerMessage }> {
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
    if (challenge.op !== "CHALLENGE") return { reply: challenge, challenge };
    const clientFinal = await client.final(challenge.data);
    const reply = await this.send({ op: "PROOF", data: clientFinal });
    if (reply.op !== "ERROR") client.verify((reply as { data: string }).data);
    return { reply, clientFinal, challenge };
  }

  /** Log in or throw. */
  async login(user: string, password: string): Promise<void> {
    const { reply } = await this.scram("LOGIN", user, password);
    if (reply.op !== "LOGIN") throw new Error(`Login failed: ${JSON.stringify(reply)}`);
  }
}

/** The ClientMessage type, re-exported for tests building raw messages. */
export type { ClientMessage };
