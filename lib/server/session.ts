/**
 * The session engine: one per connection, on any transport, sans I/O. It
 * takes frame payloads and timer ticks, and emits messages to send and a
 * close request through its sink. The state machine is documented in
 * docs/PROTOCOL.md ("Session states").
 *
 * @module
 */

import { ScramServer } from "../auth/scram_server.ts";
import type { ScramServerOptions } from "../auth/scram_server.ts";
import { prepareUsername } from "../auth/username.ts";
import {
  CLIENT_OPS,
  errorMessage,
  parseJsonObject,
  peekId,
  validateClientMessage,
} from "../codec/messages.ts";
import type {
  ByeCode,
  ClientMessage,
  ClientMessageOf,
  ServerMessage,
  ServerMessageOf,
} from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import {
  endOtherSessions,
  endOtherSessionsUnsure,
  failedRequest,
  passwordChange,
  registerAccount,
} from "./_account_requests.ts";
import {
  listReply,
  loginReply,
  onlineUser,
  peerReply,
  registerIdentity,
  udpFields,
} from "./_chat_requests.ts";
import {
  checkLoginBudget,
  checkLoginGate,
  refuseIfEndedSince,
  refuseWhileCutOff,
} from "./_login_admission.ts";
import { SessionSecrets } from "./_new_verifier.ts";
import { checkProof, commitProof, issueDeviceToken, startExchange } from "./_scram_exchange.ts";
import type { PendingExchange, StartRequest } from "./_scram_exchange.ts";
import { accessReply, checkVersion, helloReply, isLoggedReply } from "./_replies.ts";
import { refuseWhileRestricted } from "./_restricted_session.ts";
import type { LoggedIn } from "./_replies.ts";
import type { LogFields } from "./logger.ts";
import { SessionClock } from "./_session_clock.ts";
import type { IdentityRecord } from "../store/user_store.ts";
import type { ConnectionInfo, SessionContext, SessionSink, TransportName } from "./session_context.ts";
import type { RegisteredSession } from "./session_registry.ts";
import type { ValidDeviceToken } from "../crypto/device_token.ts";

let nextSessionId = 1;

/** The SCRAM options of every session without channel binding: one object, not one per session. */
const NO_BINDING: Readonly<ScramServerOptions> = Object.freeze({});

/**
 * One connection's protocol state.
 *
 * @example
 * ```ts ignore
 * const session = new Session(context, { peerAddress: "127.0.0.1", transport: "tcp", confidential: false }, sink);
 * await session.receive(new TextEncoder().encode('{"op":"HELLO","version":1}'));
 * ```
 */
export class Session implements RegisteredSession {
  /** Unique id, for logs. */
  readonly id: number = nextSessionId++;
  #ctx: SessionContext;
  #info: ConnectionInfo;
  #sink: SessionSink;
  #scram: ScramServer;
  #hello = false;
  #user: LoggedIn | null = null;
  #pending: PendingExchange | null = null;
  #secrets: SessionSecrets;
  #closed = false;
  #removed = false;
  /** The client said CLOSE: its user lingers online a moment (see `PresenceDirectory.leave`). */
  #leftCleanly = false;
  #clock: SessionClock;
  /**
   * The id of the device token this session holds (`null`: none): the valid one its latest LOGIN showed,
   * replaced by the one the server issued at each successful LOGIN or PASSWD since. PASSWD and DELETE are
   * counted against it. Kept as two fields rather than the `ValidDeviceToken` object: a server holds
   * thousands of sessions.
   */
  #tokenId: string | null = null;
  /** When the token held stops being valid, ms. */
  #tokenExpiresAt = 0;

  /**
   * Start a session for a new connection.
   *
   * @param ctx The server's shared state.
   * @param info What the transport knows about the connection.
   * @param sink Where outputs go.
   */
  constructor(ctx: SessionContext, info: ConnectionInfo, sink: SessionSink) {
    this.#ctx = ctx;
    this.#info = info;
    this.#sink = sink;
    this.#scram = new ScramServer(
      info.channelBinding
        ? {
          channelBinding: info.channelBinding,
          ...(info.channelBindingType ? { channelBindingType: info.channelBindingType } : {}),
        }
        : NO_BINDING,
    );
    this.#clock = new SessionClock(ctx, ctx.now());
    this.#secrets = new SessionSecrets(info, ctx.sealPrivateKey);
    ctx.registry.add(this);
    ctx.log.info("connect", { session: this.id, ip: info.peerAddress, transport: info.transport });
  }

  /** Source IP address. */
  get peerAddress(): string {
    return this.#info.peerAddress;
  }

  /** The transport the connection came over. */
  get transport(): TransportName {
    return this.#info.transport;
  }

  /**
   * Whether the session showed a valid device token (in its latest LOGIN), or holds one the server issued
   * it: at a connection cap, sessions that did are shed after those that did not (one per account: see
   * `SessionRegistry.holdsToken`).
   */
  get showedDeviceToken(): boolean {
    return this.#tokenId !== null;
  }

  /** Hold a device token of an account, or none: the registry is told, for whom to shed first. */
  #holdToken(token: ValidDeviceToken | null, account: string): void {
    this.#tokenId = token?.id ?? null;
    this.#tokenExpiresAt = token?.expiresAt ?? 0;
    this.#ctx.registry.holdsToken(this, token === null ? null : account);
  }

  /** The device token this session holds, or `null`. */
  get #heldToken(): ValidDeviceToken | null {
    return this.#tokenId === null ? null : { id: this.#tokenId, expiresAt: this.#tokenExpiresAt };
  }

  /** Name of the logged-in user, or `null`. */
  get user(): string | null {
    return this.#user?.name ?? null;
  }

  /** The account logged in to, with the verifier it logged in with (or its own PASSWD set), or `null`. */
  get account(): Readonly<{ id: number; verifier: string }> | null {
    return this.#user;
  }

  /** Whether the session has asked to be closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** When the session times out, in ms: the login deadline, or the idle deadline once logged in. */
  get deadline(): number {
    return this.#clock.deadline(this.#user !== null);
  }

  /**
   * Handle one frame payload. Never throws: every failure becomes an `ERROR` message.
   *
   * @param payload The payload of one frame.
   */
  async receive(payload: Uint8Array): Promise<void> {
    if (this.#closed) return;
    this.#clock.activity(this.#ctx.now());
    let requestId: number | undefined;
    let op = "request";
    try {
      const raw = parseJsonObject(payload);
      requestId = peekId(raw);
      // Only known command names reach the log's event name; anything else is the client's choice.
      if ((CLIENT_OPS as unknown[]).includes(raw.op)) op = raw.op as string;
      const msg = validateClientMessage(raw);
      if (msg.op === "PROOF") op = this.#pending?.purpose ?? "proof";
      await this.#dispatch(msg);
    } catch (err) {
      this.#report(err, requestId, op);
    }
  }

  /**
   * Report a transport-level failure (oversize or truncated frame): send it and close.
   *
   * @param err The error.
   */
  fail(err: ProtocolError): void {
    this.#report(err, undefined, "frame");
    this.#close();
  }

  /**
   * Advance the clock: past the deadline the session says why and closes.
   *
   * @param now Current time in ms.
   */
  tick(now: number): void {
    if (this.#closed || now < this.deadline) return;
    const [code, reason] = this.#clock.expiry(this.#user !== null);
    this.#ctx.log.info("timeout", { ...this.#logFields(), code });
    this.end(code, reason);
  }

  /**
   * End the session from outside: send `BYE` and close.
   *
   * @param code Why.
   * @param reason Human text.
   */
  end(code: ByeCode, reason: string): void {
    if (this.#closed) return;
    this.#ctx.log.info("ended", { ...this.#logFields(), code });
    // Nothing in flight may act for this session any more: handlers check `#closed` after each await.
    this.#pending = null;
    this.#goOffline();
    this.#send({ op: "BYE", code, reason });
    this.#close();
  }

  /**
   * The transport lost or closed the connection: forget the session.
   *
   * @param reason Why, for the log.
   */
  disconnected(reason: string): void {
    this.#closed = true;
    this.#goOffline(this.#leftCleanly);
    if (this.#removed) return;
    this.#removed = true;
    this.#ctx.registry.remove(this);
    this.#ctx.log.info("disconnect", { ...this.#logFields(), reason });
  }

  /**
   * Push a presence notice to the client.
   *
   * @param message The notice.
   */
  notify(message: ServerMessageOf<"PRESENCE">): void {
    this.#send(message);
  }

  /** Leave presence (lingering after a clean exit) and the rendezvous; the session is no longer logged in. */
  #goOffline(linger = false): void {
    if (!this.#user) return;
    this.#ctx.presence.leave(this, this.#user.key, linger);
    this.#ctx.rendezvous?.unregister(this.id);
    this.#user = null;
  }

  #logFields(): LogFields {
    return { session: this.id, ip: this.peerAddress, user: this.user ?? undefined };
  }

  #send(message: ServerMessage): void {
    if (!this.#closed) this.#sink({ kind: "send", message });
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sink({ kind: "close" });
  }

  #report(err: unknown, requestId: number | undefined, op: string): void {
    const error = failedRequest(this.#ctx, err, op, this.#logFields());
    this.#send(errorMessage(error, requestId));
    if (error.details.fatal) this.#close();
  }

  #reply(message: Exclude<ServerMessage, { op: "BYE" | "PRESENCE" }>, requestId: number | undefined): void {
    this.#send(requestId === undefined ? message : { ...message, id: requestId });
  }

  #setUser(user: LoggedIn | null, linger = false): void {
    this.#goOffline(linger);
    this.#user = user;
    if (!user) this.#clock.loggedOut(this.#ctx.now());
    this.#ctx.registry.setUser(this, user?.key ?? null);
    // A session that must change its password is not online: nobody is told, it is not listed, and it
    // hears nothing, until its PASSWD (see `#liftRestriction`).
    if (user && !user.mustChangePassword) this.#ctx.presence.join(this, onlineUser(user));
  }

  #requireUser(): LoggedIn {
    if (!this.#user) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: send LOGIN first");
    return this.#user;
  }

  async #dispatch(msg: ClientMessage): Promise<void> {
    if (!this.#hello && msg.op !== "HELLO" && msg.op !== "CLOSE") {
      throw new ProtocolError("OUT_OF_ORDER", "Send HELLO first: the protocol version is not agreed yet");
    }
    // A keepalive runs on its own clock and may land between a challenge and its proof.
    if (this.#pending && msg.op !== "PROOF" && msg.op !== "CLOSE" && msg.op !== "PING") {
      this.#pending = null;
      throw new ProtocolError(
        "OUT_OF_ORDER",
        `Expected PROOF, got ${msg.op}: the SCRAM exchange is abandoned`,
      );
    }
    refuseWhileRestricted(this.#user, msg.op);
    switch (msg.op) {
      case "HELLO":
        return this.#onHello(msg);
      case "REGISTER":
        return this.#reply(await registerAccount(this.#ctx, msg, this.#secrets, this.#logFields()), msg.id);
      case "LOGIN": {
        if (this.#user) this.#logout("relogin");
        refuseWhileCutOff(this.#ctx);
        const first = this.#scram.parseFirst(msg.mechanism, msg.data);
        const who = prepareUsername(first.username);
        // One that shows a token is asked once its token is checked: a valid one spares it the address's.
        // Without one, the budgets and the backoff are asked in one step; the exchange's gate uses its wait.
        if (msg.device_token === undefined) {
          const gateWaitMs = await checkLoginGate(this.#ctx, this.peerAddress, who.key);
          return await this.#begin({ purpose: "login", first, who, gateWaitMs }, msg.id);
        }
        return await this.#begin({ purpose: "login", first, who, deviceToken: msg.device_token }, msg.id);
      }
      case "PASSWD":
      case "DELETE":
        return await this.#onReauth(msg);
      case "PROOF":
        return await this.#onProof(msg);
      case "IS_LOGGED":
        return this.#reply(isLoggedReply(this.#user), msg.id);
      case "ACCESS":
        return await this.#onAccess(msg.id);
      case "IDENTITY":
        return this.#reply(await registerIdentity(this.#ctx, this.#requireUser(), msg), msg.id);
      case "LIST":
        this.#requireUser();
        return this.#reply(listReply(this.#ctx, msg.after), msg.id);
      case "PEER":
        this.#requireUser();
        return this.#reply(await peerReply(this.#ctx, msg.user), msg.id);
      case "PING":
        // A client that sends keepalives is held to the keepalive timeout, so a dead one goes offline soon.
        this.#clock.keepalive();
        return this.#reply({ op: "PONG" }, msg.id);
      case "LOGOUT":
        this.#requireUser();
        this.#logout("logout");
        return this.#reply({ op: "LOGOUT" }, msg.id);
      case "CLOSE":
        this.#ctx.log.info("close", this.#logFields());
        this.#leftCleanly = true;
        this.#reply({ op: "CLOSE" }, msg.id);
        return this.#close();
    }
  }

  #onHello(msg: ClientMessageOf<"HELLO">): void {
    checkVersion(msg.version);
    this.#hello = true;
    // A client that will send keepalives is held to the keepalive timeout from now on, as after a PING.
    if (msg.keepalive) this.#clock.keepalive();
    this.#reply(
      helloReply({
        name: this.#ctx.serverName,
        mechanisms: this.#scram.mechanisms,
        confidential: this.#info.confidential,
        sealKey: this.#ctx.sealPublicKey,
        sealNonce: this.#secrets.renewSealNonce(),
        iterations: this.#ctx.iterations,
        passwordMinLength: this.#ctx.passwordMinLength,
      }),
      msg.id,
    );
  }

  async #onReauth(msg: ClientMessageOf<"PASSWD"> | ClientMessageOf<"DELETE">): Promise<void> {
    const me = this.#requireUser();
    const first = this.#scram.parseFirst(msg.mechanism, msg.data);
    if (prepareUsername(first.username).key !== me.key) {
      throw new ProtocolError(
        "BAD_SCRAM",
        `${msg.op} must prove the password of the logged-in user ${me.name}`,
      );
    }
    const heldToken = this.#heldToken;
    if (msg.op === "DELETE") {
      return await this.#begin({ purpose: "delete", first, who: me, heldToken }, msg.id);
    }
    const change = await passwordChange(this.#ctx, me.name, msg, this.#secrets);
    await this.#begin({ purpose: "passwd", first, who: me, heldToken, ...change }, msg.id);
  }

  /** Start a SCRAM exchange and send its challenge. */
  async #begin(request: Omit<StartRequest, "peerAddress">, requestId: number | undefined): Promise<void> {
    const pending = await startExchange(this.#ctx, this.#scram, {
      ...request,
      peerAddress: this.peerAddress,
      log: this.#logFields(),
    });
    if (this.#closed) return;
    if (request.purpose === "login" && request.deviceToken !== undefined) {
      const deviceToken = pending.deviceToken !== null;
      await checkLoginBudget(this.#ctx, this.peerAddress, pending.key, { deviceToken });
      if (this.#closed) return;
    }
    if (request.purpose === "login") this.#holdToken(pending.deviceToken, pending.key);
    this.#pending = pending;
    this.#reply({ op: "CHALLENGE", data: pending.exchange.serverFirst }, requestId);
  }

  async #onProof(msg: ClientMessageOf<"PROOF">): Promise<void> {
    const pending = this.#pending;
    this.#pending = null;
    if (!pending) {
      throw new ProtocolError(
        "OUT_OF_ORDER",
        "No SCRAM exchange in progress: send LOGIN, PASSWD or DELETE first",
      );
    }
    const now = this.#ctx.now();
    const serverFinal = await checkProof(this.#ctx, pending, msg.data, this.peerAddress);
    if (this.#closed) return;
    if (pending.purpose !== "login" && this.#user?.key !== pending.key) {
      throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: the session ended meanwhile");
    }
    // Taken before the store write: a PASSWD or DELETE that ends the account's sessions after the write
    // checked the password must end this one too, though it is not registered as logged in yet.
    const mark = this.#ctx.registry.mark();
    const fields = { session: this.id, ip: this.peerAddress, user: pending.name };
    let committed: Awaited<ReturnType<typeof commitProof>>;
    try {
      committed = await commitProof(this.#ctx, pending, now);
    } catch (err) {
      // The database may have committed the change before it stopped answering: its sessions end anyway.
      const unavailable = err instanceof ProtocolError && err.code === "UNAVAILABLE";
      if (pending.purpose === "login" || !unavailable) throw err;
      throw await endOtherSessionsUnsure(this.#ctx, pending.purpose, pending.key, this, fields);
    }
    const { previous, identity, verifier } = committed;
    if (this.#closed) return;
    if (pending.purpose === "login") {
      return await this.#loggedIn(pending, { now, previous, identity, serverFinal, verifier, mark }, msg.id);
    }
    if (pending.purpose === "passwd") {
      const me = this.#user;
      if (me) me.verifier = verifier;
      await endOtherSessions(this.#ctx, "passwd", pending.key, this, fields);
      if (this.#closed) return;
      // The new password killed every token of the old one: this device gets one for the new password.
      const issued = await issueDeviceToken(
        this.#ctx,
        { id: pending.userId!, key: pending.key, verifier },
        now,
      );
      if (this.#closed) return;
      this.#holdToken(issued.grant, pending.key);
      const reply = { op: "PASSWD" as const, data: serverFinal, device_token: issued.token };
      if (me?.mustChangePassword) return await this.#liftRestriction(me, pending, reply, msg.id);
      return this.#reply(reply, msg.id);
    }
    this.#setUser(null);
    // Its token died with the account.
    this.#holdToken(null, pending.key);
    await endOtherSessions(this.#ctx, "delete", pending.key, this, fields);
    if (this.#closed) return;
    this.#reply({ op: "DELETE", user: pending.name, data: serverFinal }, msg.id);
  }

  async #loggedIn(
    pending: PendingExchange,
    done: {
      now: number;
      previous: number | null;
      identity: IdentityRecord | null;
      serverFinal: string;
      verifier: string;
      /** The registry's mark taken before the store write. */
      mark: number;
    },
    requestId: number | undefined,
  ): Promise<void> {
    const issued = await issueDeviceToken(
      this.#ctx,
      { id: pending.userId!, key: pending.key, verifier: done.verifier },
      done.now,
    );
    const login = await loginReply(this.#ctx, this.id, pending, {
      serverFinal: done.serverFinal,
      identity: done.identity,
      deviceToken: issued.token,
    });
    if (this.#closed) return this.#ctx.rendezvous?.unregister(this.id);
    try {
      // Checked again after the last wait, in the same step as the session is registered: a node that
      // lost touch meanwhile has ended its sessions (and one back by now did too), and so has a PASSWD or
      // DELETE of the account that came after the store write.
      refuseWhileCutOff(this.#ctx);
      refuseIfEndedSince(this.#ctx, pending.key, done.mark);
    } catch (err) {
      this.#ctx.rendezvous?.unregister(this.id);
      throw err;
    }
    this.#holdToken(issued.grant, pending.key);
    this.#setUser({
      id: pending.userId!,
      name: pending.name,
      key: pending.key,
      loginAt: done.now,
      previousLogin: done.previous,
      verifier: done.verifier,
      ...login.identity,
      mustChangePassword: pending.mustChangePassword,
    });
    this.#ctx.log.info("login_ok", {
      ...this.#logFields(),
      transport: this.#info.transport,
      ...(pending.deviceToken ? { device_token: true } : {}),
      ...(pending.mustChangePassword ? { must_change_password: true } : {}),
    });
    this.#reply(login.reply, requestId);
  }

  /**
   * The PASSWD of a session that had to change its password succeeded (the store cleared the flag in the
   * same write): it becomes a normal session without a new login. It goes online, and its reply carries
   * the UDP rendezvous its LOGIN reply did not, keyed by this exchange's session key.
   */
  async #liftRestriction(
    me: LoggedIn,
    pending: PendingExchange,
    reply: ServerMessageOf<"PASSWD">,
    requestId: number | undefined,
  ): Promise<void> {
    const udp = await udpFields(this.#ctx, this.id, pending);
    if (this.#closed) return this.#ctx.rendezvous?.unregister(this.id);
    me.mustChangePassword = false;
    this.#ctx.presence.join(this, onlineUser(me));
    this.#ctx.log.info("restriction_lifted", this.#logFields());
    this.#reply({ ...reply, ...(udp ? { udp } : {}) }, requestId);
  }

  async #onAccess(requestId: number | undefined): Promise<void> {
    const me = this.#requireUser();
    const record = await this.#ctx.store.findUser(me.key);
    if (!record) {
      this.#logout("account_gone");
      throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: the account no longer exists");
    }
    this.#reply(accessReply(record, me), requestId);
  }

  #logout(reason: string): void {
    const name = this.user;
    this.#setUser(null, reason === "logout" || reason === "relogin");
    this.#ctx.log.info("logout", { session: this.id, ip: this.peerAddress, user: name ?? undefined, reason });
  }
}
