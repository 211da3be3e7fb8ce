/**
 * Length-prefixed frames: a 4-byte big-endian unsigned length, then that many
 * payload bytes. The length is checked against {@linkcode MAX_FRAME_BYTES}
 * before any payload memory is allocated.
 *
 * @module
 */

import { ProtocolError } from "./protocol_error.ts";

/** Largest payload a frame may carry: 64 KiB. */
export const MAX_FRAME_BYTES = 65536;

/** Size of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/**
 * Prefix a payload with its length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame } from "./frame.ts";
 * const frame = encodeFrame(new Uint8Array([7, 8]));
 * assert(frame.length === 6 && frame[3] === 2);
 * ```
 *
 * @param payload The bytes to frame.
 * @returns Header and payload in one array.
 * @throws {RangeError} When the payload exceeds {@linkcode MAX_FRAME_BYTES}.
 */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_FRAME_BYTES) {
    throw new RangeError(`Frame too large: ${payload.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental frame decoder: feed it bytes as they arrive, get whole payloads out.
 * Memory held is bounded by one header plus one payload of at most 64 KiB.
 *
 * Errors never throw out of {@linkcode FrameDecoder.push}: frames completed
 * before the error are still returned, and the error is kept in
 * {@linkcode FrameDecoder.error}. After an error the stream cannot be
 * resynchronised, so later input is ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FrameDecoder } from "./frame.ts";
 * const decoder = new FrameDecoder();
 * const bytes = encodeFrame(new Uint8Array([1, 2, 3]));
 * assert(decoder.push(bytes.subarray(0, 5)).length === 0);
 * assert(decoder.push(bytes.subarray(5))[0]?.length === 3);
 * assert(decoder.error === null);
 * ```
 */
export class FrameDecoder {
  #maxBytes: number;
  /** The length header read so far, big-endian, and how many of its bytes. */
  #header = 0;
  #headerFill = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;
  #error: ProtocolError | null = null;

  /**
   * Make a decoder.
   *
   * @param maxBytes Payload cap; defaults to {@linkcode MAX_FRAME_BYTES}.
   */
  constructor(maxBytes: number = MAX_FRAME_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The fatal error that stopped decoding (`FRAME_TOO_LARGE` or a truncated `BAD_FRAME`), or `null`. */
  get error(): ProtocolError | null {
    return this.#error;
  }

  /**
   * Feed bytes; return every payload completed by them, in order.
   *
   * @param chunk Bytes just received.
   * @returns Completed payloads (possibly empty ones). When a header announces more than the cap,
   *   decoding stops there and {@linkcode FrameDecoder.error} is set.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length && this.#error === null) {
      if (this.#body === null) {
        while (this.#headerFill < FRAME_HEADER_BYTES && pos < chunk.length) {
          this.#header = this.#header * 256 + chunk[pos++]!;
          this.#headerFill++;
        }
        if (this.#headerFill < FRAME_HEADER_BYTES) break;
        const length = this.#header;
        this.#header = 0;
        if (length > this.#maxBytes) {
          this.#error = new ProtocolError(
            "FRAME_TOO_LARGE",
            `Frame too large: ${length} bytes exceeds ${this.#maxBytes}`,
            { fatal: true },
          );
          break;
        }
        this.#headerFill = 0;
        if (length === 0) {
          frames.push(new Uint8Array(0));
          continue;
        }
        this.#body = new Uint8Array(length);
        this.#bodyFill = 0;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyFill, chunk.length - pos);
      body.set(chunk.subarray(pos, pos + take), this.#bodyFill);
      this.#bodyFill += take;
      pos += take;
      if (this.#bodyFill === body.length) {
        frames.push(body);
        this.#body = null;
      }
    }
    return frames;
  }

  /** Bytes of an incomplete frame currently held. */
  get pendingBytes(): number {
    return this.#body === null ? this.#headerFill : FRAME_HEADER_BYTES + this.#bodyFill;
  }

  /**
   * Signal end of stream. Ending inside a frame sets {@linkcode FrameDecoder.error} to a `BAD_FRAME`.
   *
   * @returns The error that ended decoding, or `null` for a clean end.
   */
  end(): ProtocolError | null {
    if (this.#error !== null) return this.#error;
    if (this.#body !== null) {
      this.#error = new ProtocolError(
        "BAD_FRAME",
        `Truncated frame: stream ended after ${this.#bodyFill} of ${this.#body.length} payload bytes`,
        { fatal: true },
      );
    } else if (this.#headerFill > 0) {
      this.#error = new ProtocolError(
        "BAD_FRAME",
        `Truncated frame: stream ended after ${this.#headerFill} of ${FRAME_HEADER_BYTES} header bytes`,
        { fatal: true },
      );
    }
    return this.#error;
  }
}
