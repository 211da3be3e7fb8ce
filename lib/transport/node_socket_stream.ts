/**
 * Adapts a `node:net`/`node:tls` socket to {@linkcode ByteStream}. The client
 * uses `node:tls` because it exposes the server's certificate, which
 * certificate pinning and `tls-server-end-point` channel binding need.
 *
 * @module
 */

import type { Socket } from "node:net";
import type { ByteStream } from "./byte_stream.ts";

/**
 * A node socket as a {@linkcode ByteStream}, with backpressure: the socket is
 * paused while unread data is buffered.
 */
export class NodeSocketStream implements ByteStream {
  #socket: Socket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | null = null;
  #waiting: (() => void) | null = null;

  /**
   * Wrap a connected socket.
   *
   * @param socket The socket.
   */
  constructor(socket: Socket) {
    this.#socket = socket;
    const wake = () => {
      const w = this.#waiting;
      this.#waiting = null;
      w?.();
    };
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(new Uint8Array(chunk));
      socket.pause();
      wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      wake();
    });
    socket.on("error", (err: Error) => {
      this.#error = err;
      wake();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      this.#socket.resume();
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
    const chunk = this.#chunks[0]!;
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#socket.write(data, (err?: Error | null) => err ? reject(err) : resolve(data.length));
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
