/**
 * The client's first read, checked: a server that is not authchat (a TLS port
 * reached without `--tls`, a web server, a peer that hangs up at once) is
 * named for what it is, instead of surfacing as a frame "too large" by
 * hundreds of megabytes.
 *
 * @module
 */

import type { ByteStream } from "../transport/byte_stream.ts";
import { closedError, connectErrorFrom, foreignReplyError } from "./connect_error.ts";
import type { Endpoint } from "./endpoint.ts";

/**
 * A {@linkcode ByteStream} whose first read throws a {@linkcode ConnectError} when the peer answers
 * with something other than an authchat frame or closes before answering; later reads pass through.
 */
export class FirstReadCheck implements ByteStream {
  #inner: ByteStream;
  #endpoint: Endpoint;
  #checked = false;

  /**
   * Wrap a freshly opened stream.
   *
   * @param inner The stream.
   * @param endpoint Where it is connected, for the message.
   */
  constructor(inner: ByteStream, endpoint: Endpoint) {
    this.#inner = inner;
    this.#endpoint = endpoint;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#checked) return this.#inner.read(buffer);
    let n: number | null;
    try {
      n = await this.#inner.read(buffer);
    } catch (err) {
      this.#checked = true;
      throw connectErrorFrom(err, this.#endpoint) ?? err;
    }
    this.#checked = true;
    // The client speaks first, and a server answers before it closes: an end here is a peer that hung up.
    if (n === null) throw closedError(this.#endpoint);
    const foreign = foreignReplyError(buffer.subarray(0, n), this.#endpoint);
    if (foreign) throw foreign;
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    return this.#inner.write(data);
  }

  close(): void {
    this.#inner.close();
  }
}
