/**
 * One plain TCP connection to the server speaking frames, with no client engine in between: as an attacker's
 * would (the LOGIN timing scenario), or as cheap a client as can log in (the presence scenario's users, who
 * need no identity key and so cost no Argon2id).
 *
 * @module
 */

import { FrameDecoder } from "../lib/codec/frame.ts";
import { decodeServerMessage, encodeMessage } from "../lib/codec/messages.ts";
import type { ClientMessage, ServerMessage } from "../lib/codec/messages.ts";

/** A plain TCP connection: one request at a time, its reply, and the notices between. */
export class RawConnection {
  #conn: Deno.TcpConn;
  #nextId = 1;
  #waiting: { id: number; t0: number; resolve: (r: { reply: ServerMessage; ms: number }) => void } | null =
    null;
  #failed: ((err: Error) => void) | null = null;
  #closed = false;
  /** Told of every message that is not the reply awaited (presence notices), with the time it was read. */
  onNotice: (message: ServerMessage, at: number) => void = () => {};

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    void this.#read();
  }

  /**
   * Connect to the server on 127.0.0.1.
   *
   * @param port Its TCP port.
   * @returns The connection.
   */
  static async open(port: number): Promise<RawConnection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawConnection(conn);
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder();
    const buffer = new Uint8Array(4096);
    let error: Error = new Error("The server closed the connection");
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const at = performance.now();
        const frames = decoder.push(buffer.subarray(0, n));
        if (decoder.error) throw decoder.error;
        for (const frame of frames) {
          const message = decodeServerMessage(frame);
          const waiting = this.#waiting;
          if (waiting && "id" in message && message.id === waiting.id) {
            this.#waiting = null;
            waiting.resolve({ reply: message, ms: at - waiting.t0 });
          } else {
            this.onNotice(message, at);
          }
        }
      }
    } catch (err) {
      if (!this.#closed) error = err as Error;
    }
    this.#closed = true;
    this.#failed?.(error);
  }

  /**
   * Send a request and wait for its reply.
   *
   * @param message The request, without an id (one is added).
   * @returns The reply, and the ms from just before the write to the read that completed it.
   * @throws {Error} When the server closes the connection first, or a request is already under way.
   */
  async request(message: ClientMessage): Promise<{ reply: ServerMessage; ms: number }> {
    if (this.#waiting) throw new Error("One request at a time on a raw connection");
    if (this.#closed) throw new Error("The connection is closed");
    const id = this.#nextId++;
    const frame = encodeMessage({ ...message, id });
    const replied = new Promise<{ reply: ServerMessage; ms: number }>((resolve, reject) => {
      this.#waiting = { id, t0: performance.now(), resolve };
      this.#failed = reject;
    });
    await this.#conn.write(frame);
    return await replied;
  }

  /** Close the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }
}
