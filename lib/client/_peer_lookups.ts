/**
 * The server lookups (`PEER`) of a {@linkcode ChatNode}. A lookup for a message the user sends is always
 * made. A lookup for an `HS1` from a user with no link is asked for by a datagram nobody has authenticated
 * yet (its signature can only be checked with the key the lookup returns), so those are bounded: a few at a
 * time, and each name's outcome is remembered for a few seconds — a failure is not asked again, and a key
 * found checks further `HS1`s from that name without asking.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { decodeBase64 } from "../codec/base64.ts";
import { hs1SignedBytes } from "../codec/datagram.ts";
import type { Hs1Datagram } from "../codec/datagram.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { verifyIdentitySignature } from "../crypto/identity_key.ts";
import type { PeerInfo } from "./authchat_client.ts";

/** Lookups for incoming handshakes under way at once. */
export const MAX_INCOMING_LOOKUPS = 4;
/** How long the outcome of a lookup for an incoming handshake is remembered. */
export const REMEMBER_MS = 5000;
/** Names remembered at most (the oldest go first): a flood of names must not grow memory. */
const MAX_REMEMBERED = 256;

/** An incoming handshake was dropped unchecked: too many lookups for others are under way. */
export class LookupsBusy extends Error {}

/** An HS1 from a user we had no link with did not verify with the key the server has for them. */
export class ForgedHandshake extends Error {}

/** Whether a name is a user key as peers send it (already prepared and lower-cased). */
export function isUserKey(name: string): boolean {
  try {
    return prepareUsername(name).key === name;
  } catch {
    return false;
  }
}

/** A check that an HS1 is signed by the key the server has for its sender. */
export function hs1Check(d: Hs1Datagram): (peerKey: Uint8Array<ArrayBuffer>) => Promise<boolean> {
  return (peerKey) => verifyIdentitySignature(peerKey, d.sig, hs1SignedBytes(d.from, d.to, d.eph));
}

/** `PEER` said the user is online but has not proved a UDP address yet (their rendezvous is under way). */
function notReachableYet(err: unknown): boolean {
  return err instanceof ProtocolError && err.code === "USER_OFFLINE" &&
    /not reachable over UDP/.test(err.message);
}

/** What {@linkcode PeerLookups.recheck} found. */
export type Recheck =
  | { kind: "same" }
  | { kind: "moved"; direct: { hostname: string; port: number }; relayId: number }
  | { kind: "gone"; why: string };

/** A key-changed refusal. */
export class PeerKeyChangedError extends Error {
  /**
   * Make the error.
   *
   * @param user The peer.
   * @param fingerprint The new key's fingerprint.
   */
  constructor(user: string, fingerprint: string) {
    super(
      `WARNING: the identity key of ${user} has CHANGED (now ${fingerprint}). Someone may be impersonating ` +
        `them, or they made a new key. Compare safety numbers with "fingerprint ${user}" over another channel, ` +
        `then run "trust ${user}" to accept it. Nothing was sent.`,
    );
    this.name = "PeerKeyChangedError";
  }
}

interface Outcome {
  until: number;
  info: PeerInfo | null;
  error: unknown;
}

/** The node's `PEER` lookups. */
export class PeerLookups {
  #peer: (user: string) => Promise<PeerInfo>;
  #incoming = 0;
  #remembered = new Map<string, Outcome>();

  /**
   * @param peer Ask the server where a user is.
   */
  constructor(peer: (user: string) => Promise<PeerInfo>) {
    this.#peer = peer;
  }

  /**
   * Look a user up for a message we send, retried briefly while the peer's rendezvous is on its way.
   *
   * @param name The user.
   * @returns The `PEER` reply.
   */
  async forSend(name: string): Promise<PeerInfo> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#peer(name);
      } catch (err) {
        if (!notReachableYet(err) || attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Look up the sender of an `HS1`: once (a peer that sent one has finished its rendezvous), at most
   * {@linkcode MAX_INCOMING_LOOKUPS} at a time, and answered from memory within {@linkcode REMEMBER_MS} of
   * the last lookup of that name.
   *
   * @param key The sender's user key.
   * @returns The `PEER` reply.
   * @throws {LookupsBusy} When too many are under way.
   * @throws {ProtocolError} The lookup's error, possibly remembered.
   */
  async forHandshake(key: string): Promise<PeerInfo> {
    const now = Date.now();
    const known = this.#remembered.get(key);
    if (known && known.until > now) {
      if (known.info) return known.info;
      throw known.error;
    }
    if (this.#incoming >= MAX_INCOMING_LOOKUPS) throw new LookupsBusy("Too many lookups under way");
    this.#incoming++;
    try {
      const info = await this.#peer(key);
      this.#remember(key, { until: Date.now() + REMEMBER_MS, info, error: null });
      return info;
    } catch (err) {
      this.#remember(key, { until: Date.now() + REMEMBER_MS, info: null, error: err });
      throw err;
    } finally {
      this.#incoming--;
    }
  }

  /**
   * Look again at a user we have a link with, whose sends stalled.
   *
   * @param name The user.
   * @param known The identity key and relay id the link has.
   * @returns `same` (or a failed lookup: nothing to go by), `moved` to a new session of the user, or `gone`
   *   (offline, unknown, or a new identity key) with the reason.
   */
  async recheck(
    name: string,
    known: { key: Uint8Array; relayId: number | null },
  ): Promise<Recheck> {
    let info: PeerInfo;
    try {
      info = await this.#peer(name);
    } catch (err) {
      // Online but not yet reachable: a new session of the peer finishing its rendezvous. Look again later.
      const gone = err instanceof ProtocolError && !notReachableYet(err) &&
        (err.code === "USER_OFFLINE" || err.code === "UNKNOWN_USER");
      return gone ? { kind: "gone", why: err.message } : { kind: "same" };
    }
    const key = decodeBase64(info.key);
    if (!key || !constantTimeEqual(key, known.key)) {
      return { kind: "gone", why: `the identity key of ${info.user} changed` };
    }
    if (info.relay_id === known.relayId) return { kind: "same" };
    return { kind: "moved", direct: { hostname: info.address, port: info.port }, relayId: info.relay_id };
  }

  /**
   * Forget what a lookup of this user found (they went offline, logged in anew or were re-trusted).
   *
   * @param key The user key.
   */
  forget(key: string): void {
    this.#remembered.delete(key);
  }

  #remember(key: string, outcome: Outcome): void {
    // Re-inserted, so the map stays in expiry order and the oldest entry is first.
    this.#remembered.delete(key);
    this.#remembered.set(key, outcome);
    for (const [name, o] of this.#remembered) {
      if (o.until > Date.now() && this.#remembered.size <= MAX_REMEMBERED) break;
      this.#remembered.delete(name);
    }
  }
}
