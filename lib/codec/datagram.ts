/**
 * Datagram layouts of the UDP side: rendezvous and relay with the server,
 * handshakes and encrypted data between peers (docs/PROTOCOL.md, "Datagrams").
 *
 * @module
 */

/** Largest datagram sent or accepted. */
export const MAX_DATAGRAM = 1200;
/** Largest peer datagram, so that a relayed one still fits {@linkcode MAX_DATAGRAM}. */
export const MAX_PEER_DATAGRAM = 1150;
/** First byte of every datagram. */
export const MAGIC = 0xac;
/** Datagram format version. */
export const DATAGRAM_VERSION = 1;
/** Bytes of a DATA header: prefix, session id, counter. */
export const DATA_HEADER_BYTES = 19;

/** A decoded DATA datagram. */
export interface DataDatagram {
  type: "DATA";
  /** 8-byte session id. */
  session: Uint8Array<ArrayBuffer>;
  /** Per-key message counter. */
  counter: number;
  /** The 19 header bytes: the associated data. */
  header: Uint8Array<ArrayBuffer>;
  /** AES-GCM output, tag included. */
  ciphertext: Uint8Array<ArrayBuffer>;
}

/**
 * The header of a DATA datagram.
 *
 * @param session 8-byte session id.
 * @param counter Message counter, at most 2^53 - 1.
 * @returns 19 bytes.
 */
export function encodeDataHeader(session: Uint8Array, counter: number): Uint8Array<ArrayBuffer> {
  if (session.length !== 8) throw new RangeError(`Session id must be 8 bytes: got ${session.length}`);
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`Invalid counter: ${counter}`);
  const out = new Uint8Array(DATA_HEADER_BYTES);
  out[0] = MAGIC;
  out[1] = DATAGRAM_VERSION;
  out[2] = 0x20;
  out.set(session, 3);
  new DataView(out.buffer).setBigUint64(11, BigInt(counter));
  return out;
}

/**
 * A whole DATA datagram.
 *
 * @param header Output of {@linkcode encodeDataHeader}.
 * @param ciphertext AES-GCM output.
 * @returns The datagram.
 */
export function encodeData(header: Uint8Array, ciphertext: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(header.length + ciphertext.length);
  out.set(header);
  out.set(ciphertext, header.length);
  return out;
}
