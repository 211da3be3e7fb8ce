/**
 * The byte-stream shape the framing layer needs. `Deno.Conn` and
 * `Deno.TlsConn` satisfy it as they are; {@linkcode NodeSocketStream} adapts
 * a `node:tls` socket.
 *
 * @module
 */

/** A reliable, ordered byte stream. */
export interface ByteStream {
  /**
   * Read into `buffer`.
   *
   * @param buffer Where to put the bytes.
   * @returns Bytes read, or `null` at end of stream.
   */
  read(buffer: Uint8Array): Promise<number | null>;
  /**
   * Write some of `data`.
   *
   * @param data The bytes.
   * @returns Bytes written.
   */
  write(data: Uint8Array): Promise<number>;
  /** Close both directions. */
  close(): void;
}
