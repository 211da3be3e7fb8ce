/**
 * The decoded shapes of datagrams (docs/PROTOCOL.md, "Datagrams"), shared by
 * the codec in `datagram.ts` and its byte-level half `_datagram_bytes.ts`.
 *
 * @module
 */

/**
 * The tag of a server datagram (RDV, RDV_ACK, RELAY, RELAYED) and the bytes it covers, split apart but not
 * checked: `verifyDatagram` (lib/crypto/datagram_tag.ts) checks them. Decoded fields of every kind are views
 * into one private copy of the decoded bytes, so the caller may reuse its buffer.
 */
export interface MacFields {
  /** Every byte before the tag. */
  macInput: Uint8Array<ArrayBuffer>;
  /** The last 16 bytes: HMAC-SHA-256 over `macInput`, truncated, if the datagram is authentic. */
  tag: Uint8Array<ArrayBuffer>;
}

/** RDV, client to server: a 16-byte session `handle` and a per-session `counter`. */
export interface RdvDatagram extends MacFields {
  type: "RDV";
  handle: Uint8Array<ArrayBuffer>;
  counter: number;
}

/** RDV_ACK, server to client: `handle`, `counter` of the RDV answered, the `observed` address. */
export interface RdvAckDatagram extends MacFields {
  type: "RDV_ACK";
  handle: Uint8Array<ArrayBuffer>;
  counter: number;
  /** As `host:port`, e.g. `203.0.113.5:40000`. */
  observed: string;
}

/** RELAY, client to server: forward a peer datagram to relay id `to`. */
export interface RelayDatagram extends MacFields {
  type: "RELAY";
  handle: Uint8Array<ArrayBuffer>;
  counter: number;
  to: number;
  /** The peer datagram, as bytes. */
  inner: Uint8Array<ArrayBuffer>;
  /** The peer datagram, decoded. */
  peer: PeerDatagram;
}

/** RELAYED, server to client: a peer datagram from relay id `from`. */
export interface RelayedDatagram extends MacFields {
  type: "RELAYED";
  from: number;
  /** The peer datagram, as bytes. */
  inner: Uint8Array<ArrayBuffer>;
  /** The peer datagram, decoded. */
  peer: PeerDatagram;
}

/** HS1, initiator `from` to responder `to` (user keys): its 32-byte X25519 `eph` and Ed25519 `sig`. */
export interface Hs1Datagram {
  type: "HS1";
  from: string;
  to: string;
  eph: Uint8Array<ArrayBuffer>;
  /** 64 bytes, over `hs1SignedBytes` (in `datagram.ts`). */
  sig: Uint8Array<ArrayBuffer>;
}

/** HS2, responder `from` to initiator `to`: both 32-byte ephemeral keys and an Ed25519 `sig`. */
export interface Hs2Datagram {
  type: "HS2";
  from: string;
  to: string;
  ephInit: Uint8Array<ArrayBuffer>;
  ephResp: Uint8Array<ArrayBuffer>;
  /** 64 bytes, over `hs2SignedBytes` (in `datagram.ts`). */
  sig: Uint8Array<ArrayBuffer>;
}

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

/** Datagrams exchanged between peers, directly or inside RELAY / RELAYED. */
export type PeerDatagram = Hs1Datagram | Hs2Datagram | DataDatagram;
/** Datagrams exchanged with the server, each ending in a tag. */
export type MacDatagram = RdvDatagram | RdvAckDatagram | RelayDatagram | RelayedDatagram;
/** Any datagram, told apart by `type`. */
export type Datagram = MacDatagram | PeerDatagram;
