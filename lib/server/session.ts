/**
 * The session engine: one per connection, on any transport, sans I/O. It
 * takes frame payloads and timer ticks, and emits messages to send and a
 * close request through its sink. The state machine is documented in
 * docs/PROTOCOL.md ("Session states").
 *
 * @module
 */

import { checkPassword } from "../auth/password_policy.ts";
import { mockVerifier, ScramServer } from "../auth/scram_server.ts";
import type { ScramServerExchange } from "../auth/scram_server.ts";
import { prepareUsername } from "../auth/username.ts";
import { encodeBase64 } from "../codec/base64.ts";
import {
  errorMessage,
  parseJsonObject,
  peekId,
  PROTOCOL_VERSION,
  validateClientMessage,
} from "../codec/messages.ts";
import type { ByeCode, ClientMessage, ClientMessageOf, Sealed, ServerMessage } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { ClientFirst } from "../codec/scram_messages.ts";
import { openSealed, sealContext } from "../crypto/seal.ts";
import { createVerifier, formatVerifier, parseVerifier } from "../crypto/scram_verifier.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import { createAccount } from "../store/create_account.ts";
import type { ConnectionInfo, SessionContext, SessionSink } from "./session_context.ts";
import type { RegisteredSession } from "./session_registry.ts";

let nextSessionId = 1;

interface LoggedIn {
  id: number;
  name: string;
  key: string;
  loginAt: number;
  previousLogin: number | null;
}

type Purpose = "login" | "passwd" | "delete";

interface Pending {
  purpose: Purpose;
  exchange: ScramServerExchange;
  name: string;
  key: string;
  userId: number | null;
  newPassword?: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

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
  #pending: Pending | null = null;
  #sealNonce: string | null = null;
  #closed = false;
  #removed = false;
  #authSince: number;
  #lastActivity: number;

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
    this.#scram = new ScramServer(info.channelBinding ? { channelBinding: info.channelBinding } : {});
    this.#authSince = this.#lastActivity = ctx.now();
    ctx.registry.add(this);
    ctx.log.info("connect", { session: this.id, ip: info.peerAddress, transport: info.transport });
  }

  /** Source IP address. */
  get peerAddress(): string {
    return this.#info.peerAddress;
  }

  /** Name of the logged-in user, or `null`. */
  get user(): string | null {
    return this.#user?.name ?? null;
  }

  /** Whether the session has asked to be closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** When the session times out, in ms: the login deadline, or the idle deadline once logged in. */
  get deadline(): number {
    return this.#user
      ? this.#lastActivity + this.#ctx.idleTimeoutMs
      : this.#authSince + this.#ctx.authTimeoutMs;
  }

  /**
   * Handle one frame payload. Never throws: every failure becomes an `ERROR` message.
   *
   * @param payload The payload of one frame.
   */
  async receive(payload: Uint8Array): Promise<void> {
    if (this.#closed) return;
    this.#lastActivity = this.#ctx.now();
    let requestId: number | undefined;
    let op = "frame";
    try {
      const raw = parseJsonObject(payload);
      requestId = peekId(raw);
      if (typeof raw.op === "string" && raw.op.length <= 16) op = raw.op;
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
    const code: ByeCode = this.#user ? "IDLE_TIMEOUT" : "AUTH_TIMEOUT";
    this.#ctx.log.info("timeout", {
      session: this.id,
      ip: this.peerAddress,
      user: this.user ?? undefined,
      code,
    });
    this.end(
      code,
      this.#user
        ? `Idle for ${this.#ctx.idleTimeoutMs / 1000} s: session closed`
        : `Not logged in within ${this.#ctx.authTimeoutMs / 1000} s: connection closed`,
    );
  }

  /**
   * End the session from outside: send `BYE` and close.
   *
   * @param code Why.
   * @param reason Human text.
   */
  end(code: ByeCode, reason: string): void {
    if (this.#closed) return;
    this.#pending = null;
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
    if (this.#removed) return;
    this.#removed = true;
    this.#ctx.registry.remove(this);
    this.#ctx.log.info("disconnect", {
      session: this.id,
      ip: this.peerAddress,
      user: this.user ?? undefined,
      reason,
    });
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
    const known = err instanceof ProtocolError;
    const error = known
      ? err
      : new ProtocolError("INTERNAL", "Internal server error: the request was not completed");
    const fields = { session: this.id, ip: this.peerAddress, user: this.user ?? undefined, code: error.code };
    if (known) this.#ctx.log.info(`${op.toLowerCase()}_failed`, fields);
    else {this.#ctx.log.error("internal_error", {
        ...fields,
        op,
        error: (err as Error)?.message ?? String(err),
      });}
    this.#send(errorMessage(error, requestId));
    if (error.details.fatal) this.#close();
  }

  #reply(message: Exclude<ServerMessage, { op: "BYE" }>, requestId: number | undefined): void {
    this.#send(requestId === undefined ? message : { ...message, id: requestId });
  }

  #setUser(user: LoggedIn | null): void {
    this.#user = user;
    if (!user) this.#authSince = this.#ctx.now();
    this.#ctx.registry.setUser(this, user?.key ?? null);
  }

  #requireUser(): LoggedIn {
    if (!this.#user) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: send LOGIN first");
    return this.#user;
  }

  async #dispatch(msg: ClientMessage): Promise<void> {
    if (!this.#hello && msg.op !== "HELLO" && msg.op !== "CLOSE") {
      throw new ProtocolError("OUT_OF_ORDER", "Send HELLO first: the protocol version is not agreed yet");
    }
    if (this.#pending && msg.op !== "PROOF" && msg.op !== "CLOSE") {
      this.#pending = null;
      throw new ProtocolError(
        "OUT_OF_ORDER",
        `Expected PROOF, got ${msg.op}: the SCRAM exchange is abandoned`,
      );
    }
    switch (msg.op) {
      case "HELLO":
        return this.#onHello(msg);
      case "REGISTER":
        return await this.#onRegister(msg);
      case "LOGIN": {
        if (this.#user) this.#logout("relogin");
        const first = this.#scram.parseFirst(msg.mechanism, msg.data);
        const { name, key } = prepareUsername(first.username);
        return await this.#begin("login", first, { name, key }, msg.id);
      }
      case "PASSWD":
      case "DELETE":
        return await this.#onReauth(msg);
      case "PROOF":
        return await this.#onProof(msg);
      case "IS_LOGGED":
        return this.#reply(
          this.#user
            ? { op: "IS_LOGGED", logged_in: true, user: this.#user.name }
            : { op: "IS_LOGGED", logged_in: false },
          msg.id,
        );
      case "ACCESS":
        return await this.#onAccess(msg.id);
      case "LOGOUT":
        this.#requireUser();
        this.#logout("logout");
        return this.#reply({ op: "LOGOUT" }, msg.id);
      case "CLOSE":
        this.#ctx.log.info("close", { session: this.id, ip: this.peerAddress, user: this.user ?? undefined });
        this.#reply({ op: "CLOSE" }, msg.id);
        return this.#close();
    }
  }

  #onHello(msg: ClientMessageOf<"HELLO">): void {
    if (msg.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        "UNSUPPORTED_VERSION",
        `Unsupported protocol version: ${msg.version} (this server speaks ${PROTOCOL_VERSION})`,
      );
    }
    this.#hello = true;
    this.#sealNonce ??= encodeBase64(crypto.getRandomValues(new Uint8Array(18)));
    this.#reply({
      op: "HELLO",
      server: this.#ctx.serverName,
      version: PROTOCOL_VERSION,
      versions: [PROTOCOL_VERSION],
      mechanisms: this.#scram.mechanisms,
      confidential: this.#info.confidential,
      seal_key: this.#ctx.sealPublicKey,
      seal_nonce: this.#sealNonce,
    }, msg.id);
  }

  /** The new password of REGISTER or PASSWD: in clear only inside TLS, else sealed to this session. */
  async #secret(
    op: "REGISTER" | "PASSWD",
    user: string,
    msg: { password?: string; sealed?: Sealed },
  ): Promise<string> {
    if (msg.password !== undefined && msg.sealed !== undefined) {
      throw new ProtocolError("BAD_MESSAGE", "Invalid field msg.password: send password or sealed, not both");
    }
    if (msg.password !== undefined) {
      if (!this.#info.confidential) {
        throw new ProtocolError(
          "CONFIDENTIALITY_REQUIRED",
          "Password in clear on a plain connection: seal it to the server key or use TLS",
        );
      }
      return msg.password;
    }
    if (msg.sealed === undefined) {
      throw new ProtocolError(
        "BAD_MESSAGE",
        `Invalid field msg.sealed: ${op} needs password (TLS) or sealed`,
      );
    }
    const nonce = this.#sealNonce;
    this.#sealNonce = null;
    if (nonce === null) {
      throw new ProtocolError("SEAL_INVALID", "No seal nonce in this session: send HELLO for a fresh one");
    }
    const bytes = await openSealed(this.#ctx.sealPrivateKey, msg.sealed, sealContext(op, { user, nonce }));
    try {
      return utf8.decode(bytes);
    } catch {
      throw new ProtocolError("BAD_ENCODING", "Invalid UTF-8 in the sealed password");
    } finally {
      bytes.fill(0);
    }
  }

  async #onRegister(msg: ClientMessageOf<"REGISTER">): Promise<void> {
    // The name is checked before the secret is opened: the cheaper, clearer refusal comes first.
    prepareUsername(msg.user);
    const password = await this.#secret("REGISTER", msg.user, msg);
    const record = await createAccount(this.#ctx.store, { user: msg.user, password }, {
      iterations: this.#ctx.iterations,
      minPasswordLength: this.#ctx.passwordMinLength,
      now: this.#ctx.now(),
    });
    this.#ctx.log.info("register", { session: this.id, ip: this.peerAddress, user: record.name });
    this.#reply({ op: "REGISTER", user: record.name }, msg.id);
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
    if (msg.op === "DELETE") return await this.#begin("delete", first, me, msg.id);
    const newPassword = checkPassword(await this.#secret("PASSWD", me.name, msg), {
      minLength: this.#ctx.passwordMinLength,
      username: me.name,
    });
    await this.#begin("passwd", first, me, msg.id, newPassword);
  }

  /** Start a SCRAM exchange; unknown users get a mock one that fails the same way. */
  async #begin(
    purpose: Purpose,
    first: ClientFirst,
    who: { name: string; key: string },
    requestId: number | undefined,
    newPassword?: string,
  ): Promise<void> {
    const wait = this.#ctx.limiter.retryAfter(this.peerAddress, who.key, this.#ctx.now());
    if (wait > 0) {
      throw new ProtocolError(
        "RATE_LIMITED",
        `Too many failed attempts: retry in ${Math.ceil(wait / 1000)} s`,
        {
          retryAfterMs: wait,
        },
      );
    }
    // Computed for every exchange, known user or not, so both paths do the same work.
    const mock = await mockVerifier(this.#ctx.mockSecret, who.key, this.#ctx.iterations);
    const record = await this.#ctx.store.findUser(who.key);
    let verifier: ScramVerifier = mock;
    let userId: number | null = null;
    if (record) {
      try {
        verifier = parseVerifier(record.verifier);
        userId = record.id;
      } catch (err) {
        this.#ctx.log.error("bad_verifier", { user: record.name, error: (err as Error).message });
      }
    }
    const exchange = this.#scram.begin(first, verifier, { mock: userId === null });
    this.#pending = { purpose, exchange, name: record?.name ?? who.name, key: who.key, userId };
    if (newPassword !== undefined) this.#pending.newPassword = newPassword;
    this.#reply({ op: "CHALLENGE", data: exchange.serverFirst }, requestId);
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
    let serverFinal: string;
    try {
      serverFinal = await pending.exchange.finish(msg.data);
    } catch (err) {
      this.#ctx.limiter.recordFailure(this.peerAddress, pending.key, now);
      throw err;
    }
    this.#ctx.limiter.recordSuccess(this.peerAddress, pending.key);
    const userId = pending.userId!;
    const fields = { session: this.id, ip: this.peerAddress, user: pending.name };
    if (pending.purpose === "login") {
      const previous = await this.#ctx.store.recordLogin(userId, now);
      if (previous === undefined) {
        throw new ProtocolError("AUTH_FAILED", "Authentication failed: the account was deleted");
      }
      this.#setUser({
        id: userId,
        name: pending.name,
        key: pending.key,
        loginAt: now,
        previousLogin: previous,
      });
      this.#ctx.log.info("login_ok", { ...fields, transport: this.#info.transport });
      return this.#reply({ op: "LOGIN", user: pending.name, data: serverFinal }, msg.id);
    }
    if (this.#user?.key !== pending.key) {
      throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: the session ended meanwhile");
    }
    if (pending.purpose === "passwd") {
      const verifier = await createVerifier(pending.newPassword!, { iterations: this.#ctx.iterations });
      if (!await this.#ctx.store.updateVerifier(userId, formatVerifier(verifier))) {
        throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: the account no longer exists");
      }
      const ended = this.#ctx.registry.endUser(
        pending.key,
        this,
        "PASSWORD_CHANGED",
        "Password changed: log in again",
      );
      this.#ctx.log.info("passwd", { ...fields, ended_sessions: ended });
      return this.#reply({ op: "PASSWD", data: serverFinal }, msg.id);
    }
    await this.#ctx.store.deleteUser(userId);
    this.#setUser(null);
    const ended = this.#ctx.registry.endUser(pending.key, this, "ACCOUNT_DELETED", "Account deleted");
    this.#ctx.log.info("delete", { ...fields, ended_sessions: ended });
    this.#reply({ op: "DELETE", user: pending.name, data: serverFinal }, msg.id);
  }

  async #onAccess(requestId: number | undefined): Promise<void> {
    const me = this.#requireUser();
    const record = await this.#ctx.store.findUser(me.key);
    if (!record) {
      this.#logout("account_gone");
      throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: the account no longer exists");
    }
    this.#reply({
      op: "ACCESS",
      user: record.name,
      created: iso(record.createdAt),
      ...(me.previousLogin === null ? {} : { last_login: iso(me.previousLogin) }),
      login: iso(me.loginAt),
      resource:
        `Welcome, ${record.name}. This is the protected resource: only a logged-in session can read it.`,
    }, requestId);
  }

  #logout(reason: string): void {
    const name = this.user;
    this.#setUser(null);
    this.#ctx.log.info("logout", { session: this.id, ip: this.peerAddress, user: name ?? undefined, reason });
  }
}
