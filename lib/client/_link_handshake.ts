/**
 * The signed X25519 handshake of a {@linkcode PeerLink}, sans state: making an HS1, answering one with an
 * HS2, and checking an HS2 against the HS1 it answers. See docs/PROTOCOL.md, "Direct messages".
 *
 * @module
 */

import { encodeHs1, encodeHs2, hs1SignedBytes, hs2SignedBytes } from "../codec/datagram.ts";
import type { Hs1Datagram, Hs2Datagram } from "../codec/datagram.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { signWith, verifyIdentitySignature } from "../crypto/identity_key.ts";
import type { Identity } from "../crypto/identity_key.ts";
import { deriveSessionKeys, generateEphemeral } from "../crypto/peer_session.ts";
import type { EphemeralKeyPair } from "../crypto/peer_session.ts";

/** Keys of one session. */
export type SessionKeys = Awaited<ReturnType<typeof deriveSessionKeys>>;

/** Who we are and who the peer is. */
export interface HandshakeParties {
  me: string;
  peer: string;
  identity: Identity;
  peerKey: Uint8Array<ArrayBuffer>;
}

/** Start a handshake: a fresh ephemeral key and the signed HS1 carrying it. */
export async function makeHs1(
  p: HandshakeParties,
): Promise<{ eph: EphemeralKeyPair; hs1: Uint8Array<ArrayBuffer> }> {
  const eph = await generateEphemeral();
  const sig = await signWith(p.identity, hs1SignedBytes(p.me, p.peer, eph.publicKey));
  return { eph, hs1: encodeHs1({ from: p.me, to: p.peer, eph: eph.publicKey, sig }) };
}

/** Whether an HS1 is from the peer to us, signed by the peer's key. */
export async function hs1Authentic(p: HandshakeParties, d: Hs1Datagram): Promise<boolean> {
  return await verifyIdentitySignature(p.peerKey, d.sig, hs1SignedBytes(d.from, d.to, d.eph));
}

/** Answer an authentic HS1: the responder's session keys and the signed HS2. */
export async function answerHs1(
  p: HandshakeParties,
  d: Hs1Datagram,
): Promise<{ keys: SessionKeys; hs2: Uint8Array<ArrayBuffer> }> {
  const eph = await generateEphemeral();
  const keys = await deriveSessionKeys({
    ephemeralPrivate: eph.privateKey,
    peerEphemeral: d.eph,
    initiator: d.from,
    responder: d.to,
    ephInit: d.eph,
    ephResp: eph.publicKey,
    role: "responder",
  });
  const sig = await signWith(p.identity, hs2SignedBytes(p.me, p.peer, d.eph, eph.publicKey));
  const hs2 = encodeHs2({ from: p.me, to: p.peer, ephInit: d.eph, ephResp: eph.publicKey, sig });
  return { keys, hs2 };
}

/** Whether an HS2 answers our HS1 (made with `eph`): from the peer to us, signed by the peer's key. */
export async function hs2Authentic(
  p: HandshakeParties,
  eph: EphemeralKeyPair,
  d: Hs2Datagram,
): Promise<"unexpected" | "badSignature" | "ok"> {
  if (d.from !== p.peer || d.to !== p.me || !constantTimeEqual(d.ephInit, eph.publicKey)) return "unexpected";
  const signed = hs2SignedBytes(d.from, d.to, d.ephInit, d.ephResp);
  return await verifyIdentitySignature(p.peerKey, d.sig, signed) ? "ok" : "badSignature";
}

/** The initiator's session keys from an authentic HS2. */
export async function finishHs2(
  p: HandshakeParties,
  eph: EphemeralKeyPair,
  d: Hs2Datagram,
): Promise<SessionKeys> {
  return await deriveSessionKeys({
    ephemeralPrivate: eph.privateKey,
    peerEphemeral: d.ephResp,
    initiator: p.me,
    responder: p.peer,
    ephInit: d.ephInit,
    ephResp: d.ephResp,
    role: "initiator",
  });
}
