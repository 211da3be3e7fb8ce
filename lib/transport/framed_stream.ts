/**
 * Frames over a byte stream: an async iterator of payloads in, ordered writes out.
 *
 * @module
 */

import { FrameDecoder } from "../codec/frame.ts";
import type { ProtocolError } from "../codec/protocol_error.ts";
import type { ByteStream } from "./byte_stream.ts";
import { raceTimeout } from "./race_timeout.ts";

const READ_BUFFER_BYTES = 16 * 1024;

/**
 * A framed connection.
 *
 * @example
 * ```ts ignore
 * const framed = new FramedStream(await Deno.connect({ port: 1991 }));
 * for await (const payload of framed.payloads()) console.log(payload.length);
 * ```
 */
export class FramedStream {
  #conn: ByteStream;
  #decoder = new FrameDecoder();
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  /**
   * Frame a byte stream.
   *
   * @param conn The stream.
   */
  constructor(conn: ByteStream) {
    this.#conn = conn;
  }

  /** The framing error that stopped {@linkcode FramedStream.payloads}, if any. */
  get error(): ProtocolError | null {
    return this.#decoder.error;
  }

  /** Whether {@linkcode FramedStream.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Yield each payload as it completes. Ends at end of stream or at a framing error
   * (then {@linkcode FramedStream.error} says which); throws what the stream throws.
   *
   * @returns The payloads.
   */
  async *payloads(): AsyncGenerator<Uint8Array> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    while (true) {
      const n = await this.#conn.read(buffer);
      if (n === null) {
        this.#decoder.end();
        return;
      }
      for (const payload of this.#decoder.push(buffer.subarray(0, n))) yield payload;
      if (this.#decoder.error) return;
    }
  }

  /**
   * Queue bytes for writing; writes happen in call order.
   *
   * @param bytes A whole frame.
   * @returns Resolves when written; rejects when the stream fails.
   */
  send(bytes: Uint8Array): Promise<void> {
    const write = this.#writes.then(async () => {
      let done = 0;
      while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  /**
   * Finish queued writes (waiting at most `timeoutMs`), then close.
   *
   * @param timeoutMs Longest wait for a peer that does not read.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await raceTimeout(this.#writes, timeoutMs);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
  }
}
