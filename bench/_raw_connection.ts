/**
 * One plain TCP connection to the server speaking frames, with no client engine in between: as an attacker's
 * would (the LOGIN timing scenario), or as cheap a client as can log in (the cluster's scenarios, whose users
 * need no identity key and so cost no Argon2id). Such a connection may come from any address of 127.0.0.0/8,
 * as users come from addresses of their own.
 *
 * @module
 */

import net from "node:net";
import { FrameDecoder } from "../lib/codec/frame.ts";
import { decodeServerMessage, encodeMessage } from "../lib/codec/messages.ts";
import type { ClientMessage, ServerMessage } from "../lib/codec/messages.ts";

/** The two ends a raw connection can have: Deno's own socket, or `node:net`'s (which can bind an address). */
interface Pipe {
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
}

/** A plain TCP connection: one request at a time, its reply, and the notices between. */
export class RawConnection {
  #pipe: Pipe;
  #decoder = new FrameDecoder();
  #nextId = 1;
  #waiting: { id: number; t0: number; resolve: (r: { reply: ServerMessage; ms: number }) => void } | null =
    null;
  #failed: ((err: Error) => void) | null = null;
  #closed = false;
  /** Told of every message that is not the reply awaited (presence notices), with the time it was read. */
  onNotice: (message: ServerMessage, at: number) => void = () => {};

  private constructor(open: (received: (bytes: Uint8Array) => void, ended: (err?: Error) => void) => Pipe) {
    this.#pipe = open((bytes) => this.#received(bytes), (err) => this.#ended(err));
  }

  /**
   * Connect to the server on 127.0.0.1.
   *
   * @param port Its TCP port.
   * @param options `from`: the local address to connect from (default: the system's choice, 127.0.0.1).
   * @returns The connection.
   */
  static async open(port: number, options: { from?: string } = {}): Promise<RawConnection> {
    if (options.from !== undefined) {
      const socket = net.connect({ host: "127.0.0.1", port, localAddress: options.from, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      return new RawConnection((received, ended) => {
        socket.on("data", (chunk: Uint8Array) => received(chunk));
        socket.on("error", (err: Error) => ended(err));
        socket.on("close", () => ended());
        return {
          write: (bytes) =>
            new Promise<void>((resolve, reject) =>
              socket.write(bytes, (err) => err ? reject(err) : resolve())
            ),
          close: () => socket.destroy(),
        };
      });
    }
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawConnection((received, ended) => {
      void (async () => {
        const buffer = new Uint8Array(4096);
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            received(buffer.subarray(0, n));
          }
          ended();
        } catch (err) {
          ended(err as Error);
        }
      })();
      return {
        write: async (bytes) => {
          await conn.write(bytes);
        },
        close: () => conn.close(),
      };
    });
  }

  #received(bytes: Uint8Array): void {
    const at = performance.now();
    let frames: Uint8Array[];
    try {
      frames = this.#decoder.push(bytes);
      if (this.#decoder.error) throw this.#decoder.error;
    } catch (err) {
      this.#ended(err as Error);
      this.#pipe.close();
      return;
    }
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

  #ended(err?: Error): void {
    const closedByUs = this.#closed;
    this.#closed = true;
    this.#failed?.(closedByUs || !err ? new Error("The connection was closed") : err);
    this.#failed = null;
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
    await this.#pipe.write(frame);
    return await replied;
  }

  /** Close the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pipe.close();
  }
}
