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

/** A plain TCP connection that sends requests and reads their replies, passing over notices. */
export class RawConnection {
  #conn: Deno.TcpConn;
  #decoder = new FrameDecoder();
  #frames: Uint8Array[] = [];
  #buffer = new Uint8Array(4096);
  #nextId = 1;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
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

  /**
   * Send a request and read its reply; messages without the request's id (presence notices) are passed over.
   *
   * @param message The request, without an id (one is added).
   * @returns The reply, and the ms from just before the write to the reply's last byte.
   * @throws {Error} When the server closes the connection first.
   */
  async request(message: ClientMessage): Promise<{ reply: ServerMessage; ms: number }> {
    const id = this.#nextId++;
    const frame = encodeMessage({ ...message, id });
    const t0 = performance.now();
    await this.#conn.write(frame);
    for (;;) {
      while (this.#frames.length === 0) {
        const n = await this.#conn.read(this.#buffer);
        if (n === null) throw new Error("The server closed the connection");
        this.#frames.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
        if (this.#decoder.error) throw this.#decoder.error;
      }
      const ms = performance.now() - t0;
      const reply = decodeServerMessage(this.#frames.shift()!);
      if ("id" in reply && reply.id === id) return { reply, ms };
    }
  }

  /** Close the connection. */
  close(): void {
    this.#conn.close();
  }
}
