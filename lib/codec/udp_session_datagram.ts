/**
 * Datagram layouts of a server session over UDP once the server has admitted
 * an INIT (docs/PROTOCOL.md 20.5–20.8): `ACCEPT` (server authentication and
 * key share, in up to three fragments), `FINISH` (the client's key
 * confirmation) and `RECORD` (AES-256-GCM protected payload). Pure bytes: the
 * transcript, signatures, MACs and AEAD live in `lib/crypto`.
 *
 * @module
 */

import { DatagramReader, DatagramWriter, MAX_DATAGRAM } from "./_datagram_bytes.ts";
import { ProtocolError } from "./protocol_error.ts";

/** Type byte of `ACCEPT`, server to client. */
export const ACCEPT_TYPE = 0x32;
/** Type byte of `FINISH`, client to server. */
export const FINISH_TYPE = 0x33;
/** Type byte of `RECORD`, both directions. */
export const RECORD_TYPE = 0x34;

/** Bytes of a connection id. */
export const CONNECTION_ID_BYTES = 8;
/** Bytes of `client_random` and `server_random`. */
export const RANDOM_BYTES = 32;
/** Bytes of an X25519 key share. */
export const SHARE_BYTES = 32;
/** Bytes of the FINISH `verify_data`. */
export const VERIFY_DATA_BYTES = 32;
/** Bytes of the AES-GCM tag ending a RECORD. */
export const RECORD_TAG_BYTES = 16;
/** Bytes of a RECORD header: prefix, connection id, counter; the AEAD's associated data. */
export const RECORD_HEADER_BYTES: number = 3 + CONNECTION_ID_BYTES + 8;
/** Largest RECORD payload: what is left of a 1200-byte datagram after header and tag. */
export const MAX_RECORD_PAYLOAD: number = MAX_DATAGRAM - RECORD_HEADER_BYTES - RECORD_TAG_BYTES;
/** Bytes of an ACCEPT fragment header: prefix, connection id, index, count. */
export const ACCEPT_FRAGMENT_HEADER_BYTES: number = 3 + CONNECTION_ID_BYTES + 2;
/** Most fragments of one ACCEPT. */
export const MAX_ACCEPT_FRAGMENTS = 3;
/** Largest ACCEPT body: three full fragments. */
export const MAX_ACCEPT_BODY: number = MAX_ACCEPT_FRAGMENTS * (MAX_DATAGRAM - ACCEPT_FRAGMENT_HEADER_BYTES);
/** The INIT bytes the transcript covers: `version ‖ client_random ‖ client_share`. */
export const INIT_TRANSCRIPT_BYTES: number = 1 + RANDOM_BYTES + SHARE_BYTES;

/** Signature algorithms of ACCEPT, by their byte. */
export const SIGNATURE_ALGORITHMS = {
  /** ECDSA P-256 with SHA-256, signature as r ‖ s (64 bytes, IEEE P1363, as WebCrypto gives it). */
  "ecdsa-p256-sha256": 0x01,
  /** RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt (as TLS 1.3's rsa_pss_rsae_sha256). */
  "rsa-pss-sha256": 0x02,
  /**
   * Ed25519 (64 bytes), by a key the certificate's key delegated for a while: the body carries the
   * delegated credential (docs/PROTOCOL.md 20.5).
   */
  "ed25519-delegated": 0x03,
} as const;
/** Name of an ACCEPT signature algorithm. */
export type SignatureAlgorithm = keyof typeof SIGNATURE_ALGORITHMS;
/** The algorithms a certificate's own key signs with. */
export type CertificateAlgorithm = Exclude<SignatureAlgorithm, "ed25519-delegated">;

/** The fields of an ACCEPT, reassembled from its fragments. */
export interface AcceptBody {
  /** 32 bytes. */
  serverRandom: Uint8Array<ArrayBuffer>;
  /** The server's ephemeral X25519 public key, 32 bytes. */
  serverShare: Uint8Array<ArrayBuffer>;
  /** 8 bytes, chosen by the server. */
  connectionId: Uint8Array<ArrayBuffer>;
  /** Which algorithm signed. */
  algorithm: SignatureAlgorithm;
  /** The server's certificate, DER (1..65535 bytes). */
  certificate: Uint8Array<ArrayBuffer>;
  /** The delegated credential (1..65535 bytes): present exactly when `algorithm` is `ed25519-delegated`. */
  credential?: Uint8Array<ArrayBuffer>;
  /** The signature over the transcript hash (1..65535 bytes). */
  signature: Uint8Array<ArrayBuffer>;
}

/** One ACCEPT fragment. */
export interface AcceptFragment {
  /** The connection id the fragment's ACCEPT names: groups fragments. */
  connectionId: Uint8Array<ArrayBuffer>;
  /** 0-based, below `count`. */
  index: number;
  /** 1..3. */
  count: number;
  /** At least one byte of the ACCEPT body. */
  chunk: Uint8Array<ArrayBuffer>;
}

/** A decoded FINISH. */
export interface FinishDatagram {
  /** 8 bytes. */
  connectionId: Uint8Array<ArrayBuffer>;
  /** 32 bytes: HMAC-SHA-256 under the finish key. */
  verifyData: Uint8Array<ArrayBuffer>;
}

/** A decoded RECORD. */
export interface RecordDatagram {
  /** 8 bytes. */
  connectionId: Uint8Array<ArrayBuffer>;
  /** u64 counter, at most 2^53 - 1. */
  counter: number;
  /** The 19 header bytes: the associated data. */
  header: Uint8Array<ArrayBuffer>;
  /** AES-GCM output, tag included (at least 16 bytes). */
  ciphertext: Uint8Array<ArrayBuffer>;
}

function bad(message: string): never {
  throw new ProtocolError("BAD_DATAGRAM", message);
}

function reader(bytes: Uint8Array, type: number, kind: string): DatagramReader {
  if (bytes.length > MAX_DATAGRAM) bad(`Datagram too large: ${bytes.length} bytes exceeds ${MAX_DATAGRAM}`);
  const r = new DatagramReader(bytes.slice());
  const got = r.prefix();
  if (got !== type) bad(`Bad datagram: type 0x${got.toString(16).padStart(2, "0")} is not ${kind}`);
  return r;
}

/**
 * The INIT bytes the transcript starts with: `version ‖ client_random ‖ client_share`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initTranscriptBytes } from "./udp_session_datagram.ts";
 * const bytes = initTranscriptBytes(1, new Uint8Array(32), new Uint8Array(32).fill(7));
 * assert(bytes.length === 65 && bytes[0] === 1 && bytes[64] === 7);
 * ```
 *
 * @param version The INIT's version byte.
 * @param clientRandom 32 bytes.
 * @param clientShare 32 bytes.
 * @returns 65 bytes.
 * @throws {RangeError} When a field has the wrong size.
 */
export function initTranscriptBytes(
  version: number,
  clientRandom: Uint8Array,
  clientShare: Uint8Array,
): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(null, INIT_TRANSCRIPT_BYTES).u8(version)
    .bytes(clientRandom, "client_random", RANDOM_BYTES).bytes(clientShare, "client_share", SHARE_BYTES)
    .finish();
}

/**
 * The signed part of an ACCEPT body, which the transcript covers after the INIT bytes:
 * `server_random ‖ server_share ‖ connection_id ‖ sig_alg:u8 ‖ cert_len:u16 ‖ cert`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptSignedBytes } from "./udp_session_datagram.ts";
 * const z = new Uint8Array(32);
 * const bytes = acceptSignedBytes({
 *   serverRandom: z, serverShare: z, connectionId: new Uint8Array(8),
 *   algorithm: "ecdsa-p256-sha256", certificate: new Uint8Array(10),
 * });
 * assert(bytes.length === 32 + 32 + 8 + 1 + 2 + 10);
 * ```
 *
 * @param body The ACCEPT fields but the signature.
 * @returns The bytes.
 * @throws {RangeError} When a field has the wrong size.
 */
export function acceptSignedBytes(body: Omit<AcceptBody, "signature">): Uint8Array<ArrayBuffer> {
  return signedPart(new DatagramWriter(null, MAX_ACCEPT_BODY), body).finish();
}

function signedPart(w: DatagramWriter, body: Omit<AcceptBody, "signature">): DatagramWriter {
  const { certificate, credential } = body;
  if (certificate.length < 1 || certificate.length > 0xffff) {
    throw new RangeError(`Invalid certificate: ${certificate.length} bytes is outside 1..65535`);
  }
  const delegated = body.algorithm === "ed25519-delegated";
  if (delegated !== (credential !== undefined)) {
    throw new RangeError("Invalid ACCEPT: a credential goes with ed25519-delegated, and only with it");
  }
  w.bytes(body.serverRandom, "server_random", RANDOM_BYTES)
    .bytes(body.serverShare, "server_share", SHARE_BYTES)
    .bytes(body.connectionId, "connection id", CONNECTION_ID_BYTES)
    .u8(SIGNATURE_ALGORITHMS[body.algorithm])
    .u8(certificate.length >> 8).u8(certificate.length & 0xff).bytes(certificate, "certificate");
  if (credential === undefined) return w;
  if (credential.length < 1 || credential.length > 0xffff) {
    throw new RangeError(`Invalid credential: ${credential.length} bytes is outside 1..65535`);
  }
  return w.u8(credential.length >> 8).u8(credential.length & 0xff).bytes(credential, "credential");
}

/**
 * Encode an ACCEPT into its datagrams: the body (signed part, `sig_len:u16 ‖ sig`) cut into as few
 * fragments as fit 1200 bytes each, each `0xAC 0x01 0x32 ‖ connection_id ‖ index:u8 ‖ count:u8 ‖ chunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeAccept } from "./udp_session_datagram.ts";
 * const z = new Uint8Array(32);
 * const datagrams = encodeAccept({
 *   serverRandom: z, serverShare: z, connectionId: new Uint8Array(8), algorithm: "rsa-pss-sha256",
 *   certificate: new Uint8Array(1100), signature: new Uint8Array(384),
 * });
 * assert(datagrams.length === 2 && datagrams.every((d) => d.length <= 1200));
 * ```
 *
 * @param body The ACCEPT.
 * @returns One to three datagrams.
 * @throws {RangeError} When a field has the wrong size or the body needs more than three datagrams.
 */
export function encodeAccept(body: AcceptBody): Uint8Array<ArrayBuffer>[] {
  const { signature } = body;
  if (signature.length < 1 || signature.length > 0xffff) {
    throw new RangeError(`Invalid signature: ${signature.length} bytes is outside 1..65535`);
  }
  const w = signedPart(new DatagramWriter(null, MAX_ACCEPT_BODY), body)
    .u8(signature.length >> 8).u8(signature.length & 0xff).bytes(signature, "signature");
  const whole = w.view();
  const room = MAX_DATAGRAM - ACCEPT_FRAGMENT_HEADER_BYTES;
  const count = Math.ceil(whole.length / room);
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let index = 0; index < count; index++) {
    const chunk = whole.subarray(index * room, (index + 1) * room);
    out.push(
      new DatagramWriter(ACCEPT_TYPE).bytes(body.connectionId, "connection id", CONNECTION_ID_BYTES)
        .u8(index).u8(count).bytes(chunk, "chunk").finish(),
    );
  }
  return out;
}

/**
 * Decode one ACCEPT fragment.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeAcceptFragment, encodeAccept } from "./udp_session_datagram.ts";
 * const z = new Uint8Array(32);
 * const [d] = encodeAccept({
 *   serverRandom: z, serverShare: z, connectionId: new Uint8Array(8).fill(9),
 *   algorithm: "ecdsa-p256-sha256", certificate: new Uint8Array(400), signature: new Uint8Array(64),
 * });
 * const f = decodeAcceptFragment(d!);
 * assert(f.count === 1 && f.index === 0 && f.connectionId[0] === 9);
 * ```
 *
 * @param bytes One datagram.
 * @returns The fragment (views into a private copy).
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed.
 */
export function decodeAcceptFragment(bytes: Uint8Array): AcceptFragment {
  const r = reader(bytes, ACCEPT_TYPE, "ACCEPT");
  const connectionId = r.bytes(CONNECTION_ID_BYTES, "ACCEPT connection id");
  const index = r.u8("ACCEPT fragment index");
  const count = r.u8("ACCEPT fragment count");
  if (count < 1 || count > MAX_ACCEPT_FRAGMENTS) bad(`Bad datagram: ACCEPT fragment count ${count}`);
  if (index >= count) bad(`Bad datagram: ACCEPT fragment index ${index} of ${count}`);
  const chunk = r.upTo(0, "ACCEPT chunk");
  if (chunk.length === 0) bad("Truncated datagram: empty ACCEPT chunk");
  return { connectionId, index, count, chunk };
}

/**
 * Decode a reassembled ACCEPT body (the fragments' chunks in order, joined).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeAcceptBody, decodeAcceptFragment, encodeAccept } from "./udp_session_datagram.ts";
 * const z = new Uint8Array(32);
 * const [d] = encodeAccept({
 *   serverRandom: z, serverShare: z, connectionId: new Uint8Array(8),
 *   algorithm: "ecdsa-p256-sha256", certificate: new Uint8Array(400), signature: new Uint8Array(64),
 * });
 * const body = decodeAcceptBody(decodeAcceptFragment(d!).chunk);
 * assert(body.certificate.length === 400 && body.signedBytes.length === 32 + 32 + 8 + 1 + 2 + 400);
 * ```
 *
 * @param bytes The body.
 * @returns The fields, and `signedBytes`: the part the transcript covers (up to the end of the
 *   credential, or of the certificate without one).
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed (unknown algorithm, empty or short
 *   certificate, credential or signature, trailing bytes).
 */
export function decodeAcceptBody(bytes: Uint8Array): AcceptBody & { signedBytes: Uint8Array<ArrayBuffer> } {
  if (bytes.length > MAX_ACCEPT_BODY) bad(`Bad datagram: ACCEPT body of ${bytes.length} bytes`);
  const r = new DatagramReader(bytes.slice());
  const serverRandom = r.bytes(RANDOM_BYTES, "ACCEPT server_random");
  const serverShare = r.bytes(SHARE_BYTES, "ACCEPT server_share");
  const connectionId = r.bytes(CONNECTION_ID_BYTES, "ACCEPT connection id");
  const algByte = r.u8("ACCEPT signature algorithm");
  const algorithm = (Object.keys(SIGNATURE_ALGORITHMS) as SignatureAlgorithm[])
    .find((name) => SIGNATURE_ALGORITHMS[name] === algByte);
  if (algorithm === undefined) bad(`Bad datagram: unknown ACCEPT signature algorithm ${algByte}`);
  const certLength = r.u8("ACCEPT certificate length") * 256 + r.u8("ACCEPT certificate length");
  if (certLength === 0) bad("Bad datagram: empty ACCEPT certificate");
  const certificate = r.bytes(certLength, "ACCEPT certificate");
  let credential: Uint8Array<ArrayBuffer> | undefined;
  if (algorithm === "ed25519-delegated") {
    const credLength = r.u8("ACCEPT credential length") * 256 + r.u8("ACCEPT credential length");
    if (credLength === 0) bad("Bad datagram: empty ACCEPT credential");
    credential = r.bytes(credLength, "ACCEPT credential");
  }
  const signedBytes = r.consumed();
  const sigLength = r.u8("ACCEPT signature length") * 256 + r.u8("ACCEPT signature length");
  if (sigLength === 0) bad("Bad datagram: empty ACCEPT signature");
  const signature = r.bytes(sigLength, "ACCEPT signature");
  r.end("ACCEPT");
  return {
    serverRandom,
    serverShare,
    connectionId,
    algorithm,
    certificate,
    ...(credential ? { credential } : {}),
    signature,
    signedBytes,
  };
}

/**
 * Encode a FINISH: `0xAC 0x01 0x33 ‖ connection_id[8] ‖ verify_data[32]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFinish } from "./udp_session_datagram.ts";
 * assert(encodeFinish(new Uint8Array(8), new Uint8Array(32)).length === 43);
 * ```
 *
 * @param connectionId 8 bytes.
 * @param verifyData 32 bytes.
 * @returns The datagram.
 * @throws {RangeError} When a field has the wrong size.
 */
export function encodeFinish(connectionId: Uint8Array, verifyData: Uint8Array): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(FINISH_TYPE, 3 + CONNECTION_ID_BYTES + VERIFY_DATA_BYTES)
    .bytes(connectionId, "connection id", CONNECTION_ID_BYTES)
    .bytes(verifyData, "verify_data", VERIFY_DATA_BYTES).finish();
}

/**
 * Decode a FINISH.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeFinish, encodeFinish } from "./udp_session_datagram.ts";
 * const f = decodeFinish(encodeFinish(new Uint8Array(8).fill(1), new Uint8Array(32).fill(2)));
 * assert(f.connectionId[0] === 1 && f.verifyData[31] === 2);
 * ```
 *
 * @param bytes One datagram.
 * @returns The fields (views into a private copy).
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed.
 */
export function decodeFinish(bytes: Uint8Array): FinishDatagram {
  const r = reader(bytes, FINISH_TYPE, "FINISH");
  const connectionId = r.bytes(CONNECTION_ID_BYTES, "FINISH connection id");
  const verifyData = r.bytes(VERIFY_DATA_BYTES, "FINISH verify_data");
  r.end("FINISH");
  return { connectionId, verifyData };
}

/**
 * The header of a RECORD, `0xAC 0x01 0x34 ‖ connection_id[8] ‖ counter:u64`: the AES-GCM associated data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRecordHeader } from "./udp_session_datagram.ts";
 * const h = encodeRecordHeader(new Uint8Array(8), 258);
 * assert(h.length === 19 && h[2] === 0x34 && h[17] === 1 && h[18] === 2);
 * ```
 *
 * @param connectionId 8 bytes.
 * @param counter A safe integer ≥ 0.
 * @returns 19 bytes.
 * @throws {RangeError} When a field is out of range.
 */
export function encodeRecordHeader(connectionId: Uint8Array, counter: number): Uint8Array<ArrayBuffer> {
  return new DatagramWriter(RECORD_TYPE, RECORD_HEADER_BYTES)
    .bytes(connectionId, "connection id", CONNECTION_ID_BYTES).counter(counter, "counter").finish();
}

/**
 * Decode a RECORD's layout (not its tag).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRecord, encodeRecordHeader } from "./udp_session_datagram.ts";
 * const bytes = new Uint8Array(19 + 16);
 * bytes.set(encodeRecordHeader(new Uint8Array(8), 5));
 * const d = decodeRecord(bytes);
 * assert(d.counter === 5 && d.ciphertext.length === 16);
 * ```
 *
 * @param bytes One datagram.
 * @returns The fields (views into a private copy).
 * @throws {ProtocolError} `BAD_DATAGRAM` for anything malformed, including a ciphertext shorter than
 *   the tag.
 */
export function decodeRecord(bytes: Uint8Array): RecordDatagram {
  const r = reader(bytes, RECORD_TYPE, "RECORD");
  const connectionId = r.bytes(CONNECTION_ID_BYTES, "RECORD connection id");
  const counter = r.counter("RECORD counter");
  const header = r.consumed();
  const ciphertext = r.upTo(0, "RECORD ciphertext");
  if (ciphertext.length < RECORD_TAG_BYTES) {
    bad(`Truncated datagram: RECORD ciphertext of ${ciphertext.length} bytes`);
  }
  return { connectionId, counter, header, ciphertext };
}
