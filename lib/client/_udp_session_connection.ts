/**
 * A UDP session as the client engine sees it: the session's byte stream, owning the socket it runs on.
 * The socket closes when the stream ends (closed here, closed by the server, or dead), and the stream's
 * end of data is reported only after that, so whoever reads it to the end (the client's reader) has
 * nothing left running once it returns: no timer, no socket.
 *
 * @module
 */

import type { ByteStream } from "../transport/byte_stream.ts";
import type { UdpSessionStats, UdpSessionStream, UdpStreamEnd } from "../transport/udp_session_stream.ts";
import type { UdpLink } from "./_udp_link.ts";
import { RECORD_TYPE } from "../codec/udp_session_datagram.ts";

/** The stream of one UDP session and its socket. */
export class UdpSessionConnection implements ByteStream {
  #stream: UdpSessionStream;
  #link: UdpLink;
  /** Resolves with why the session ended, once its socket is closed. */
  readonly ended: Promise<UdpStreamEnd>;

  /**
   * Feed the link's RECORDs to the stream, and close the link when the stream ends.
   *
   * @param stream The session's stream.
   * @param link Its socket.
   */
  constructor(stream: UdpSessionStream, link: UdpLink) {
    this.#stream = stream;
    this.#link = link;
    // Only RECORDs belong to the session now: late ACCEPTs and RETRYs are the handshake's leftovers.
    link.route((datagram) => {
      if (datagram[2] === RECORD_TYPE) stream.receive(datagram);
    });
    this.ended = stream.ended.then(async (end) => {
      link.close();
      await link.closed;
      return end;
    });
    // The socket failing (closed under it) ends the session too, rather than leaving it to its dead timeout.
    link.closed.then(() => stream.close());
  }

  /** The session's counters. */
  get stats(): UdpSessionStats {
    return this.#stream.stats;
  }

  /**
   * Read bytes in order; `null` once the session ended and its socket is closed.
   *
   * @param buffer Where to put them.
   * @returns Bytes read, or `null`.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#stream.read(buffer);
    if (n === null) await this.ended;
    return n;
  }

  /**
   * Write all of `data`.
   *
   * @param data The bytes.
   * @returns `data.length`.
   */
  write(data: Uint8Array): Promise<number> {
    return this.#stream.write(data);
  }

  /** Close: what was written is delivered first (for a short while), then the server is told. */
  close(): void {
    this.#stream.close();
  }
}
