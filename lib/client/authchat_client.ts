/**
 * The client engine: a small typed API over one connection. Front ends (the
 * REPL, scripts, tests) call it; it never prints.
 *
 * @module
 */

import type { ChannelBindingType } from "../codec/scram_messages.ts";
import type { SaltedPasswordCache } from "../auth/scram_client.ts";
import { saslPrep } from "../auth/saslprep.ts";
import { prepareNewUsername, prepareUsername } from "../auth/username.ts";
import { PROTOCOL_VERSION } from "../codec/messages.ts";
import type { ClientMessage, ServerMessageOf, ServerOp } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { verifierMatches } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import { FramedStream } from "../transport/framed_stream.ts";
import { RequestChannel } from "./_request_channel.ts";
import { checkNewPassword, newVerifierFields, trustedSealKey } from "./_new_verifier.ts";
import { scramExchange } from "./_scram_exchange.ts";
import type { ServerEvent } from "./_request_channel.ts";
import type { DeviceTokenStore } from "./device_tokens.ts";
import { endpointName } from "./endpoint.ts";
import { openConnection } from "./open_connection.ts";
import {
  chatCredentials,
  newIdentity,
  openIdentity,
  sealIdentity,
  udpCredentials,
} from "./_chat_identity.ts";
import type { ChatCredentials, IdentityCache, OnlineGrant } from "./_chat_identity.ts";
import type { Endpoint, OpenedConnection, TrustOptions, UdpSessionOptions } from "./open_connection.ts";
import type { Identity } from "../crypto/identity_key.ts";

/** What the server said in HELLO. */
export type HelloInfo = ServerMessageOf<"HELLO">;
/** The protected resource. */
export type AccessInfo = ServerMessageOf<"ACCESS">;
export { ConnectionClosedError } from "./_request_channel.ts";
export type { ServerEvent } from "./_request_channel.ts";
/** An online user as LIST shows them. */
export type ListedUser = ServerMessageOf<"LIST">["users"][number];
/** Where and how to reach a user (PEER). */
export type PeerInfo = ServerMessageOf<"PEER">;
export type { ChatCredentials, IdentityCache } from "./_chat_identity.ts";
export type { DeviceTokenStore } from "./device_tokens.ts";

/** What IS_LOGGED says about the connection. */
export interface LoginState {
  /** Whether it is logged in. */
  loggedIn: boolean;
  /** As whom. */
  user?: string;
  /** Present (true) when the account must change its password before anything else. */
  mustChangePassword?: true;
}

/** Options of {@linkcode AuthchatClient.connect}. */
export interface ClientOptions extends Endpoint {
  /** How server keys are trusted. */
  trust: TrustOptions;
  /** Longest wait for a reply before the connection is given up (default 30 s). */
  requestTimeoutMs?: number;
  /** Interval of keepalive PINGs (default 5 s; 0: none). */
  keepaliveMs?: number;
  /** Told about unsolicited server messages. */
  onEvent?: (event: ServerEvent) => void;
  /** Told once when the connection ends (BYE, a drop, or close). */
  onClosed?: () => void;
  /**
   * Where device tokens are kept (docs/PROTOCOL.md, section 7): LOGIN shows the one kept for the server and
   * account, and the one a LOGIN or PASSWD reply gives replaces it. Without a store, none is shown or kept.
   */
  deviceTokens?: DeviceTokenStore;
  /** Told about a failure that does not fail the command (a device token that could not be read or kept). */
  onWarning?: (message: string) => void;
  /** With `udp`: the proof-of-work cap and progress of the session's opening. */
  udpSession?: UdpSessionOptions;
  /**
   * What logins may reuse, shared by the connections of one client program: SaltedPasswords (RFC 5802
   * lets a client cache them) and identity keys already opened. Default: a cache per connection.
   */
  cache?: ClientCache;
}

/** Keys a client keeps between logins. */
export interface ClientCache {
  saltedPasswords: SaltedPasswordCache;
  identities: IdentityCache;
}

/**
 * One client connection.
 *
 * @example
 * ```ts ignore
 * const client = await AuthchatClient.connect({ host: "127.0.0.1", port: 1992, tls: true, trust: { knownHosts } });
 * await client.login("alice", password);
 * console.log((await client.access()).resource);
 * await client.close();
 * ```
 */
export class AuthchatClient {
  #channel: RequestChannel;
  #options: ClientOptions;
  #channelBinding: Uint8Array<ArrayBuffer> | undefined;
  #channelBindingType: ChannelBindingType | undefined;
  #hello!: HelloInfo;
  #sealNonce: string | null = null;
  #sealKey: CryptoKey | null = null;
  #closedByUs = false;
  #user: string | null = null;
  /** The logged-in account's verifier as the login proved it (or the last passwd set): no plaintext kept. */
  #verifier: ScramVerifier | null = null;
  #cache: ClientCache;
  #chat: ChatCredentials | null = null;
  /** The login must change its password before anything else (LOGIN said so). */
  #mustChange = false;
  /** A restricted login's identity key, if the account has one: `passwd` re-seals it, then chat starts. */
  #heldIdentity: Identity | null = null;
  #keepalive: ReturnType<typeof setInterval> | undefined;

  private constructor(
    framed: FramedStream,
    options: ClientOptions,
    binding: Pick<OpenedConnection, "channelBinding" | "channelBindingType"> = {},
  ) {
    this.#options = options;
    this.#cache = options.cache ?? { saltedPasswords: new Map(), identities: new Map() };
    this.#channelBinding = binding.channelBinding;
    this.#channelBindingType = binding.channelBindingType;
    this.#channel = new RequestChannel(framed, {
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      onEvent: (event) => {
        if (event.op === "BYE") this.#loggedOut();
        options.onEvent?.(event);
      },
      onClosed: () => {
        clearInterval(this.#keepalive);
        this.#chat = null;
        options.onClosed?.();
      },
    });
  }

  /**
   * Connect, check the server's keys, and say HELLO.
   *
   * @param options Endpoint, trust and callbacks.
   * @returns The connected client.
   * @throws {TrustError} When a server key is not trusted.
   * @throws {ProtocolError} When the server refuses HELLO.
   */
  static connect(options: ClientOptions): Promise<AuthchatClient> {
    return AuthchatClient.#open(options, (client) => client.#greet(client.hello()));
  }

  /**
   * Connect and log in, the LOGIN sent right behind HELLO (one round trip fewer than `connect` then
   * `login`). The exchange goes on only once HELLO is answered and the server's keys are checked: no proof
   * goes to a server that is not trusted or does not offer the mechanism this transport calls for.
   *
   * @param options Endpoint, trust and callbacks.
   * @param user User name.
   * @param password Password.
   * @returns The connected, logged-in client.
   * @throws {TrustError} When a server key is not trusted.
   * @throws {ProtocolError} When the server refuses HELLO or the login.
   */
  static connectAndLogin(options: ClientOptions, user: string, password: string): Promise<AuthchatClient> {
    return AuthchatClient.#open(options, async (client) => {
      const greeted = client.#greet(client.hello());
      const login = client.#login(user, password, greeted);
      // Both settle: a refused HELLO also fails the LOGIN behind it.
      await Promise.allSettled([greeted, login]);
      await greeted;
      await login;
    });
  }

  /** Open a connection and run `start` on it; a failure closes it. */
  static async #open(
    options: ClientOptions,
    start: (client: AuthchatClient) => Promise<unknown>,
  ): Promise<AuthchatClient> {
    const opened = await openConnection(options, options.trust, options.udpSession);
    const client = new AuthchatClient(new FramedStream(opened.stream), options, opened);
    try {
      await start(client);
      return client;
    } catch (err) {
      await client.#channel.shut("connect failed");
      throw err;
    }
  }

  /**
   * Whether the connection is confidential and bound to an authenticated server: TLS, or a UDP session
   * (its own AEAD channel, docs/PROTOCOL.md 20.5). New verifiers then go in clear inside it, and no sealing
   * key is needed.
   */
  get #confidential(): boolean {
    return this.#options.tls || this.#options.udp === true;
  }

  /** After HELLO: keepalives, and on plain TCP the check of the sealing key. */
  async #greet(hello: Promise<HelloInfo>): Promise<void> {
    await hello;
    this.#startKeepalive();
    if (!this.#confidential) {
      this.#sealKey = await trustedSealKey(this.#hello, this.#options, this.#options.trust);
    }
  }

  /** The latest HELLO reply. */
  get info(): HelloInfo {
    return this.#hello;
  }

  /** The user this connection is logged in as, as far as the client knows. */
  get user(): string | null {
    return this.#user;
  }

  /**
   * Whether the login must change its password before anything else (an account imported with a password
   * the policy refuses). Until {@linkcode passwd} succeeds, the server refuses everything but `passwd`,
   * `isLogged`, `logout` and `close` (`PASSWORD_CHANGE_REQUIRED`), and there is no chat ({@linkcode chat}
   * is `null`); after it, chat starts as after a login.
   */
  get mustChangePassword(): boolean {
    return this.#mustChange;
  }

  #loggedOut(): void {
    this.#user = null;
    this.#verifier = null;
    this.#chat = null;
    this.#mustChange = false;
    this.#heldIdentity = null;
  }

  /** Why the connection ended, or `null` while open. */
  get closedReason(): string | null {
    return this.#closedByUs ? "Closed" : this.#channel.closedReason;
  }

  /** Whether this connection is a session over UDP. */
  get overUdp(): boolean {
    return this.#options.udp === true;
  }

  /** Whether channel binding is available on this connection (TLS, UDP sessions). */
  get canBind(): boolean {
    return this.#channelBinding !== undefined;
  }

  #request<K extends ServerOp>(msg: ClientMessage, expect: K): Promise<ServerMessageOf<K>> {
    return this.#channel.request(msg, expect);
  }

  /**
   * Say HELLO (again): agree on the version and get a fresh seal nonce.
   *
   * @returns The server's greeting.
   */
  async hello(): Promise<HelloInfo> {
    // A client that pings says so at once: the server holds it to the keepalive timeout from the start.
    const keepalive = (this.#options.keepaliveMs ?? 5000) > 0;
    this.#hello = await this.#request(
      { op: "HELLO", version: PROTOCOL_VERSION, ...(keepalive ? { keepalive: true } : {}) },
      "HELLO",
    );
    this.#sealNonce = this.#hello.seal_nonce;
    return this.#hello;
  }

  /** The verifier of a new password as sent (see `_new_verifier.ts`). */
  #newVerifier(op: "REGISTER" | "PASSWD", user: string, password: string) {
    return newVerifierFields(op, user, password, {
      hello: this.#hello,
      tls: this.#confidential,
      sealKey: this.#sealKey,
      takeNonce: async () => {
        if (this.#sealNonce === null) await this.hello();
        const nonce = this.#sealNonce!;
        this.#sealNonce = null;
        return nonce;
      },
    });
  }

  /**
   * Create an account (it does not log in).
   *
   * @param user User name.
   * @param password New password.
   * @returns The name the server stored.
   * @throws {ProtocolError} `INVALID_USERNAME` for a name the rules of new names refuse and
   *   `PASSWORD_POLICY`, before anything is sent; the server's refusals (`USER_EXISTS`, …).
   */
  async register(user: string, password: string): Promise<string> {
    // The name's rules and then the policy are checked first, the cheapest refusals.
    prepareNewUsername(user);
    const { fields } = await this.#newVerifier("REGISTER", user, password);
    // The identity key is made here, and its private half leaves only sealed under the password.
    const { message } = await newIdentity(user, password);
    const reply = await this.#request({
      op: "REGISTER",
      user,
      ...fields,
      identity: message,
    }, "REGISTER");
    return reply.user;
  }

  /** One SCRAM exchange; the server's signature must verify or the connection is dropped. */
  #scram<K extends "LOGIN" | "PASSWD" | "DELETE">(
    op: K,
    user: string,
    password: string,
    extra: Record<string, unknown> = {},
    greeted?: Promise<void>,
  ): Promise<
    ServerMessageOf<K> & { sessionKey: Uint8Array<ArrayBuffer> | null; verifier: ScramVerifier | null }
  > {
    return scramExchange(op, user, password, extra, {
      channel: this.#channel,
      hello: () => this.#hello,
      cache: this.#cache.saltedPasswords,
      ...(this.#channelBinding ? { channelBinding: this.#channelBinding } : {}),
      ...(this.#channelBindingType ? { channelBindingType: this.#channelBindingType } : {}),
    }, greeted);
  }

  /**
   * Log in with SCRAM (channel-bound on TLS and UDP sessions). When the account must change its password,
   * {@linkcode mustChangePassword} says so after this and chat waits for {@linkcode passwd}.
   *
   * @param user User name.
   * @param password Password.
   * @returns The account name as stored.
   */
  login(user: string, password: string): Promise<string> {
    return this.#login(user, password);
  }

  /** Where a device token of this account on this server is kept, or `null` (no store, or no valid name). */
  #tokenSlot(user: string): { store: DeviceTokenStore; server: string; user: string } | null {
    const store = this.#options.deviceTokens;
    if (!store) return null;
    try {
      return { store, server: endpointName(this.#options), user: prepareUsername(user).key };
    } catch {
      // A name the server would refuse anyway: no token to show or keep.
      return null;
    }
  }

  /** Run a device-token file operation; a failure is told, never thrown: the command goes on without it. */
  async #tokenFile<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      this.#options.onWarning?.(`Cannot ${what} the device token: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Keep the device token a reply gave (a LOGIN's, or a PASSWD's: the new password killed the old one). */
  async #keepToken(user: string, token: string | undefined): Promise<void> {
    const slot = this.#tokenSlot(user);
    if (!slot || token === undefined) return;
    await this.#tokenFile("keep", () => slot.store.put(slot.server, slot.user, token));
  }

  async #login(user: string, password: string, greeted?: Promise<void>): Promise<string> {
    // A LOGIN logs a session out first, except one that must change its password: the server refuses it
    // anything but PASSWD, LOGOUT, IS_LOGGED and CLOSE, so it is logged out explicitly.
    if (this.#mustChange) await this.logout();
    this.#loggedOut();
    const slot = this.#tokenSlot(user);
    const token = slot && await this.#tokenFile("read", () => slot.store.get(slot.server, slot.user));
    const reply = await this.#scram("LOGIN", user, password, token ? { device_token: token } : {}, greeted);
    this.#user = reply.user;
    this.#verifier = reply.verifier;
    await this.#keepToken(user, reply.device_token);
    if (reply.must_change_password) {
      this.#mustChange = true;
      // An existing key is opened now, with the password just proved, so `passwd` can re-seal it; a new one
      // is made only after `passwd`, sealed under the new password. One that does not open leaves `passwd`
      // to be refused by the server (the account's key needs its re-sealed backup).
      if (reply.identity) {
        this.#heldIdentity = await openIdentity(reply.user, password, reply.identity, this.#cache.identities)
          .catch(() => null);
      }
      return reply.user;
    }
    this.#chat = await this.#chatCredentials(reply, password);
    return reply.user;
  }

  /** Chat credentials after a login (or a lifted restriction); IDENTITY registers a new key. */
  #chatCredentials(reply: OnlineGrant, password: string): Promise<ChatCredentials> {
    return chatCredentials(reply, password, async (message) => {
      await this.#request({ op: "IDENTITY", ...message }, "IDENTITY");
    }, this.#cache.identities);
  }

  /** After a login: the identity key and UDP credentials direct messages need. */
  get chat(): ChatCredentials | null {
    return this.#chat;
  }

  /**
   * The online users, every page.
   *
   * @returns Names with identity keys and fingerprints.
   */
  async list(): Promise<ListedUser[]> {
    const users: ListedUser[] = [];
    let after: string | undefined;
    do {
      const page = await this.#request({ op: "LIST", ...(after === undefined ? {} : { after }) }, "LIST");
      users.push(...page.users);
      after = page.next;
    } while (after !== undefined);
    return users;
  }

  /**
   * Where and how to reach a user.
   *
   * @param user The user.
   * @returns Identity key, fingerprint, relay id and observed UDP address.
   * @throws {ProtocolError} `UNKNOWN_USER`, `USER_OFFLINE` or `NOT_LOGGED_IN`.
   */
  peer(user: string): Promise<PeerInfo> {
    return this.#request({ op: "PEER", user }, "PEER");
  }

  #startKeepalive(): void {
    const every = this.#options.keepaliveMs ?? 5000;
    if (every <= 0) return;
    const ping = () => {
      if (this.#channel.closedReason === null) this.#request({ op: "PING" }, "PONG").catch(() => {});
    };
    // HELLO said `keepalive`, so the server holds this session to its keepalive timeout from the start
    // (a client that dies even in its first seconds goes offline within that time); PINGs keep it alive.
    const timer = setInterval(ping, every);
    Deno.unrefTimer(timer as unknown as number);
    this.#keepalive = timer;
  }

  /**
   * Ask whether this connection is logged in.
   *
   * @returns The state, the user, and whether the login must change its password.
   */
  async isLogged(): Promise<LoginState> {
    const reply = await this.#request({ op: "IS_LOGGED" }, "IS_LOGGED");
    if (!reply.logged_in) this.#loggedOut();
    else this.#user = reply.user ?? null;
    return {
      loggedIn: reply.logged_in,
      ...(reply.user === undefined ? {} : { user: reply.user }),
      ...(reply.logged_in && reply.must_change_password ? { mustChangePassword: true as const } : {}),
    };
  }

  /**
   * Read the protected resource.
   *
   * @returns Account name, times and the resource text.
   */
  access(): Promise<AccessInfo> {
    return this.#request({ op: "ACCESS" }, "ACCESS");
  }

  /**
   * Change the password, proving the current one. On a login that had to change its password, the
   * session becomes a normal one: chat starts as after a login ({@linkcode chat}), with the identity key
   * made (or kept) and sealed under the new password.
   *
   * @param current Current password.
   * @param next New password.
   */
  async passwd(current: string, next: string): Promise<void> {
    const user = this.#user;
    if (user === null) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: log in first");
    const { fields, verifier } = await this.#newVerifier("PASSWD", user, next);
    const identity = this.#chat?.identity ?? this.#heldIdentity;
    // The identity key backup follows the password, or only the old password would open it.
    const sealed = identity ? await sealIdentity(identity, user, next) : null;
    const reply = await this.#scram("PASSWD", user, current, {
      ...fields,
      ...(sealed ? { backup: sealed.backup } : {}),
    });
    this.#verifier = verifier;
    await this.#keepToken(user, reply.device_token);
    if (!this.#mustChange) return;
    this.#mustChange = false;
    this.#heldIdentity = null;
    // What the LOGIN reply would have given: the UDP rendezvous comes in this reply, keyed by this exchange.
    const grant = { user, ...(reply.udp ? { udp: reply.udp } : {}), sessionKey: reply.sessionKey };
    this.#chat = identity
      ? { user, identity, udp: udpCredentials(grant) }
      : await this.#chatCredentials(grant, next);
  }

  /**
   * Check a new password against the policy the server announced in HELLO, without sending anything (a
   * front end asks before it asks for the password a second time).
   *
   * @param user The account it is for.
   * @param password The new password.
   * @throws {ProtocolError} `PASSWORD_POLICY` with the reason.
   */
  async checkNewPassword(user: string, password: string): Promise<void> {
    await checkNewPassword(user, password, this.#hello);
  }

  /**
   * Tell whether a password is this login's, locally: against the verifier the login proved (the server's
   * signature matched it) or the one the last `passwd` set. It costs one PBKDF2 and sends nothing.
   *
   * @param password The password as typed.
   * @returns `false` when it is certainly not the account's password; `true` when it is, or when this
   *   connection is not logged in (nothing to compare with: the server decides).
   */
  async passwordMatches(password: string): Promise<boolean> {
    const verifier = this.#verifier;
    if (verifier === null) return true;
    let prepared: string;
    try {
      prepared = saslPrep(password, { allowUnassigned: true });
    } catch {
      return false;
    }
    return await verifierMatches(prepared, verifier);
  }

  /**
   * Delete the account, proving the password; every session of it ends.
   *
   * @param password Current password.
   * @returns The deleted account's name.
   */
  async deleteAccount(password: string): Promise<string> {
    const user = this.#user;
    if (user === null) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: log in first");
    const reply = await this.#scram("DELETE", user, password);
    this.#loggedOut();
    const slot = this.#tokenSlot(user);
    if (slot) await this.#tokenFile("drop", () => slot.store.forget(slot.server, slot.user));
    return reply.user;
  }

  /** Log out; the connection stays open. */
  async logout(): Promise<void> {
    await this.#request({ op: "LOGOUT" }, "LOGOUT");
    this.#loggedOut();
  }

  /** Say CLOSE, wait for the confirmation, and close. Safe to call on a closed connection. */
  async close(): Promise<void> {
    if (this.#channel.closedReason === null) {
      try {
        await this.#request({ op: "CLOSE" }, "CLOSE");
      } catch {
        // Closing anyway.
      }
      this.#closedByUs = true;
    }
    await this.#channel.shut("Closed");
    await this.#channel.done;
  }
}
