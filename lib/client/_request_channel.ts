/**
 * Requests and replies over one framed connection: ids, a timeout per
 * request, server errors turned back into {@linkcode ProtocolError}s, and
 * unsolicited messages (`BYE`, `PRESENCE`) handed to a callback.
 *
 * @module
 */

import { decodeServerMessage, encodeMessage, errorFromMessage, MAX_ID } from "../codec/messages.ts";
import type { ClientMessage, ServerMessage, ServerMessageOf, ServerOp } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { FramedStream } from "../transport/framed_stream.ts";
import { raceTimeout } from "../transport/race_timeout.ts";

/** A message the server sent without being asked (`BYE`, `PRESENCE`). */
export type ServerEvent = ServerMessageOf<"BYE"> | ServerMessageOf<"PRESENCE">;

/** The connection ended; pending and later requests fail with this, the error that ended it as `cause`. */
export class ConnectionClosedError extends Error {
  /**
   * Make the error.
   *
   * @param message Why.
   * @param options What ended the connection, as `cause` (a read error, a framing error, a timeout).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionClosedError";
  }
}

interface Waiter {
  resolve: (msg: ServerMessage) => void;
  reject: (err: Error) => void;
}

/** Options of {@linkcode RequestChannel}. */
export interface RequestChannelOptions {
  /** Longest wait for a reply before the connection is given up. */
  requestTimeoutMs: number;
  /** Told about unsolicited server messages. */
  onEvent: (event: ServerEvent) => void;
  /** Told once when the connection ends, for whatever reason. */
  onClosed: () => void;
}

/**
 * One connection's request/reply bookkeeping.
 *
 * @example
 * ```ts ignore
 * const channel = new RequestChannel(framed, { requestTimeoutMs: 30_000, onEvent, onClosed });
 * const hello = await channel.request({ op: "HELLO", version: 1 }, "HELLO");
 * ```
 */
export class RequestChannel {
  #framed: FramedStream;
  #options: RequestChannelOptions;
  #nextId = 1;
  #waiting = new Map<number, Waiter>();
  #closedReason: string | null = null;
  #closedCause: unknown = undefined;
  #reader: Promise<void>;

  /**
   * Start reading the connection.
   *
   * @param framed The framed connection.
   * @param options Timeout and callbacks.
   */
  constructor(framed: FramedStream, options: RequestChannelOptions) {
    this.#framed = framed;
    this.#options = options;
    this.#reader = this.#read();
  }

  /** Why the connection ended, or `null` while open. */
  get closedReason(): string | null {
    return this.#closedReason;
  }

  /** Resolves when the reader has stopped. */
  get done(): Promise<void> {
    return this.#reader;
  }

  async #read(): Promise<void> {
    let reason = "Connection closed by the server";
    let cause: unknown = undefined;
    try {
      for await (const payload of this.#framed.payloads()) {
        const msg = decodeServerMessage(payload);
        if (msg.op === "BYE" || msg.op === "PRESENCE") {
          if (msg.op === "BYE") reason = `Server ended the session: ${msg.reason} (${msg.code})`;
          this.#options.onEvent(msg);
          continue;
        }
        const waiter = msg.id === undefined ? undefined : this.#waiting.get(msg.id);
        if (waiter) {
          this.#waiting.delete(msg.id!);
          waiter.resolve(msg);
        } else if (msg.op === "ERROR") {
          reason = `Server error: ${msg.message} (${msg.code})`;
        }
      }
      if (this.#framed.error) {
        reason = `Bad data from the server: ${this.#framed.error.message}`;
        cause = this.#framed.error;
      }
    } catch (err) {
      if (this.#closedReason === null) reason = `Connection failed: ${(err as Error).message}`;
      cause = err;
    }
    await this.shut(reason, cause);
  }

  /**
   * End the connection: pending requests fail with `reason`.
   *
   * @param reason Why (the first reason given is kept).
   * @param cause The error behind it, if any (kept with the first reason).
   */
  async shut(reason: string, cause?: unknown): Promise<void> {
    if (this.#closedReason === null) {
      this.#closedReason = reason;
      this.#closedCause = cause;
      this.#options.onClosed();
    }
    for (const waiter of this.#waiting.values()) waiter.reject(this.#closedError(this.#closedReason));
    this.#waiting.clear();
    await this.#framed.close(500);
  }

  #closedError(reason: string): ConnectionClosedError {
    return new ConnectionClosedError(
      reason,
      this.#closedCause === undefined ? {} : { cause: this.#closedCause },
    );
  }

  /**
   * Send a request and wait for its reply.
   *
   * @param msg The request (its id is set here).
   * @param expect The reply's op.
   * @returns The reply.
   * @throws {ProtocolError} The server's `ERROR`, or `OUT_OF_ORDER` for another reply (which also closes).
   * @throws {ConnectionClosedError} When the connection ends first or the reply does not come in time.
   */
  async request<K extends ServerOp>(msg: ClientMessage, expect: K): Promise<ServerMessageOf<K>> {
    if (this.#closedReason !== null) throw this.#closedError(this.#closedReason);
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_ID ? 1 : this.#nextId + 1;
    const reply = new Promise<ServerMessage>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    this.#framed.send(encodeMessage({ ...msg, id } as ClientMessage)).catch(() => {});
    const timeoutMs = this.#options.requestTimeoutMs;
    if (!await raceTimeout(reply, timeoutMs)) {
      const reason = `Server did not answer ${msg.op} within ${timeoutMs / 1000} s`;
      await this.shut(reason, new Deno.errors.TimedOut(reason));
    }
    const answer = await reply;
    if (answer.op === "ERROR") {
      const err = errorFromMessage(answer);
      if (err.details.fatal) await this.shut(`Server closed the connection: ${err.message}`);
      throw err;
    }
    if (answer.op !== expect) {
      await this.shut("Protocol violation by the server");
      throw new ProtocolError(
        "OUT_OF_ORDER",
        `Unexpected reply from the server: ${answer.op} instead of ${expect}`,
      );
    }
    return answer as ServerMessageOf<K>;
  }
}
