/**
 * Frames over a byte stream: an async iterator of payloads in, ordered writes out.
 *
 * @module
 */

import { FrameDecoder } from "../codec/frame.ts";
import type { ProtocolError } from "../codec/protocol_error.ts";
import type { ByteStream } from "./byte_stream.ts";
import { raceTimeout } from "./race_timeout.ts";

// Small: a server holds one per connection, most frames are a few hundred bytes, and the decoder assembles
// larger ones from several reads.
const READ_BUFFER_BYTES = 512;

/** Most bytes queued for a peer that does not read; past it the connection is closed. */
export const MAX_QUEUED_BYTES = 1024 * 1024;

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
  /** Frames queued while a write is under way: they go out together in the next one. */
  #batch: { frames: Uint8Array[]; written: Promise<void> } | null = null;
  #queued = 0;
  #closed = false;
  #buffer: Uint8Array | null = null;
  /** Payloads decoded and not yet taken. */
  #ready: Uint8Array[] = [];
  #ended = false;

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
    for (let payload; (payload = await this.nextPayload()) !== null;) yield payload;
  }

  /**
   * The next payload, or `null` at end of stream or at a framing error (then {@linkcode FramedStream.error}
   * says which). The same as {@linkcode payloads} without a generator, for a server holding thousands of
   * idle connections, each with a read pending.
   *
   * Not an `async` function: one would stay suspended, its frame kept, for as long as its read is pending
   * (all the time on an idle connection); a callback on the read costs less.
   *
   * @returns The payload, or `null`.
   * @throws What the stream throws.
   */
  nextPayload(): Promise<Uint8Array | null> {
    try {
      if (this.#ready.length > 0) return Promise.resolve(this.#ready.shift()!);
      if (this.#ended || this.#decoder.error) return Promise.resolve(null);
      const buffer = this.#buffer ??= new Uint8Array(READ_BUFFER_BYTES);
      return this.#conn.read(buffer).then((n) => this.#received(buffer, n));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A read ended: decode what it brought, then hand the next payload on (reading again if none is whole). */
  #received(buffer: Uint8Array, n: number | null): Uint8Array | null | Promise<Uint8Array | null> {
    if (n === null) {
      this.#decoder.end();
      this.#ended = true;
      return null;
    }
    this.#ready = this.#decoder.push(buffer.subarray(0, n));
    return this.#ready.length > 0 ? this.#ready.shift()! : this.nextPayload();
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Queue bytes for writing; writes happen in call order. A peer that lets more than
   * {@linkcode MAX_QUEUED_BYTES} pile up is not reading: the connection is closed.
   *
   * @param bytes A whole frame.
   * @returns Resolves when written; rejects when the stream fails or the queue overflows.
   */
  send(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Connection closed"));
    if (this.#queued + bytes.length > MAX_QUEUED_BYTES) {
      this.close(0);
      return Promise.reject(
        new Deno.errors.WouldBlock(`Peer is not reading: over ${MAX_QUEUED_BYTES} bytes queued`),
      );
    }
    this.#queued += bytes.length;
    if (!this.#batch) {
      // One write per batch: replies and notices queued meanwhile share a system call (and a TCP segment).
      const batch: { frames: Uint8Array[]; written: Promise<void> } = { frames: [], written: null! };
      batch.written = this.#writes.then(() => this.#writeBatch(batch));
      this.#batch = batch;
      this.#writes = batch.written.catch(() => {});
    }
    this.#batch.frames.push(bytes);
    return this.#batch.written;
  }

  async #writeBatch(batch: { frames: Uint8Array[] }): Promise<void> {
    if (this.#batch === batch) this.#batch = null;
    const frames = batch.frames;
    let bytes = frames[0]!;
    if (frames.length > 1) {
      bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
      let at = 0;
      for (const f of frames) {
        bytes.set(f, at);
        at += f.length;
      }
    }
    try {
      let done = 0;
      while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
    } finally {
      this.#queued -= bytes.length;
    }
  }

  /**
   * Wait until everything queued so far is written (or failed).
   *
   * @returns Resolves when the queue is empty.
   */
  flushed(): Promise<void> {
    return this.#writes;
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
