/**
 * What opening a connection gives the client engine, whichever the transport (TCP, TLS or a UDP session).
 *
 * @module
 */

import type { ChannelBindingType } from "../codec/scram_messages.ts";
import type { ByteStream } from "../transport/byte_stream.ts";

/** An open connection. */
export interface OpenedConnection {
  /** The byte stream. */
  stream: ByteStream;
  /** Channel binding data: of the certificate seen on TLS, of the handshake on a UDP session. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** The type of `channelBinding` (default `tls-server-end-point`). */
  channelBindingType?: ChannelBindingType;
  /** Fingerprint of the certificate seen (TLS and UDP sessions). */
  certFingerprint?: string;
}
