/**
 * The server's UDP side, sans I/O: a logged-in session proves itself with a
 * MAC'd RDV datagram and the server records the address it observed; RELAY
 * datagrams are forwarded, still end-to-end encrypted, between logged-in
 * users, each user rate-limited. Nothing unauthenticated is ever answered,
 * so the port cannot be used to amplify traffic. See docs/PROTOCOL.md,
 * "Rendezvous and relay".
 *
 * @module
 */

import { TokenBucket } from "../auth/token_bucket.ts";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import {
  decodeDatagram,
  encodeRdvAck,
  encodeRelayed,
  importUdpKey,
  verifyDatagramTag,
} from "../codec/datagram.ts";
import type { Datagram } from "../codec/datagram.ts";
import { ReplayWindow } from "../crypto/replay_window.ts";
import type { SessionRendezvous, UdpEndpoint } from "./session_context.ts";

/** A datagram to send. */
export interface Outgoing {
  /** Destination address. */
  hostname: string;
  /** Destination port. */
  port: number;
  /** The datagram. */
  bytes: Uint8Array;
}

/** Where a datagram came from. */
export interface Source {
  /** Source address. */
  hostname: string;
  /** Source port. */
  port: number;
}

/** Why datagrams were dropped, and what was done. */
export interface RendezvousStats {
  /** RDVs answered. */
  rendezvous: number;
  /** Datagrams relayed. */
  relayed: number;
  /** Datagrams that did not decode. */
  malformed: number;
  /** Datagrams naming a session handle nobody holds. */
  unknownHandle: number;
  /** Datagrams whose tag did not verify. */
  badTag: number;
  /** Datagrams whose counter was seen already. */
  replayed: number;
  /** Relayed datagrams over the sender's rate. */
  rateLimited: number;
  /** Relayed datagrams to a relay id with no session, or none whose address is known yet. */
  noRecipient: number;
  /** Dropped unchecked because too many datagrams were being checked already. */
  overloaded: number;
}

interface Entry {
  sessionId: number;
  user: string;
  /** The handle as base64 (its bytes are decoded only to answer an RDV). */
  handle: string;
  /** The session's UDP key, imported when its first datagram comes (many sessions never send one). */
  rawKey: Uint8Array;
  key: Promise<CryptoKey> | null;
  /** Made with the first datagram: most sessions of a busy server never send one. */
  window: ReplayWindow | null;
  endpoint: Source | null;
  /** Tag checks under way for this handle. */
  checking: number;
}

const HANDLE_BYTES = 16;

function keyOf(entry: Entry): Promise<CryptoKey> {
  return entry.key ??= importUdpKey(entry.rawKey);
}
/** MAC checks under way at once at most: a flood must not queue them without bound. */
export const MAX_CHECKING = 1024;
/** MAC checks under way at once for one session's handle, so one flood cannot take all of them. */
export const MAX_CHECKING_PER_SESSION = 64;

/**
 * The rendezvous and relay.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rendezvous } from "./udp_rendezvous.ts";
 * const rendezvous = new Rendezvous({ relayPerSecond: 100 });
 * const { handle, relayId } = await rendezvous.register(7, "alice", new Uint8Array(32));
 * assert(handle.length === 24 && relayId === 7);
 * assert(rendezvous.endpointOf("alice") === null);
 * ```
 */
export class Rendezvous implements SessionRendezvous {
  /** The bound UDP port (set by whoever binds the socket). */
  port = 0;
  #byHandle = new Map<string, Entry>();
  #bySession = new Map<number, Entry>();
  #byUser = new Map<string, Set<Entry>>();
  /** Relay tokens, by user. */
  #relayTokens: TokenBucket;
  #stats: RendezvousStats = {
    rendezvous: 0,
    relayed: 0,
    malformed: 0,
    unknownHandle: 0,
    badTag: 0,
    replayed: 0,
    rateLimited: 0,
    noRecipient: 0,
    overloaded: 0,
  };
  #checking = 0;

  /**
   * Make the rendezvous.
   *
   * @param options How many datagrams per second each user may relay (also the burst).
   */
  constructor(options: { relayPerSecond: number }) {
    this.#relayTokens = new TokenBucket({
      perMinute: options.relayPerSecond * 60,
      burst: options.relayPerSecond,
      key: (user) => user,
    });
  }

  /** Counters, for logs and tests. */
  get stats(): Readonly<RendezvousStats> {
    return { ...this.#stats };
  }

  register(
    sessionId: number,
    user: string,
    sessionKey: Uint8Array,
  ): Promise<{ handle: string; relayId: number }> {
    this.unregister(sessionId);
    if (sessionKey.length !== 32) {
      return Promise.reject(new RangeError(`UDP key must be 32 bytes: got ${sessionKey.length}`));
    }
    const text = encodeBase64(crypto.getRandomValues(new Uint8Array(HANDLE_BYTES)));
    const entry: Entry = {
      sessionId,
      user,
      handle: text,
      // Kept as given (the caller does not reuse it): a copy per logged-in session is memory for nothing.
      rawKey: sessionKey,
      key: null,
      window: null,
      endpoint: null,
      checking: 0,
    };
    this.#byHandle.set(text, entry);
    this.#bySession.set(sessionId, entry);
    const set = this.#byUser.get(user) ?? new Set();
    set.add(entry);
    this.#byUser.set(user, set);
    return Promise.resolve({ handle: text, relayId: sessionId });
  }

  unregister(sessionId: number): void {
    const entry = this.#bySession.get(sessionId);
    if (!entry) return;
    this.#bySession.delete(sessionId);
    this.#byHandle.delete(entry.handle);
    const set = this.#byUser.get(entry.user);
    set?.delete(entry);
    if (set?.size === 0) {
      this.#byUser.delete(entry.user);
      this.#relayTokens.forget(entry.user);
    }
  }

  endpointOf(user: string): UdpEndpoint | null {
    // The newest session that proved an address: the same one every time, whichever refreshed last.
    let best: Entry | null = null;
    for (const entry of this.#byUser.get(user) ?? []) {
      if (entry.endpoint && (!best || entry.sessionId > best.sessionId)) best = entry;
    }
    return best?.endpoint
      ? { relayId: best.sessionId, hostname: best.endpoint.hostname, port: best.endpoint.port }
      : null;
  }

  /**
   * Handle one datagram.
   *
   * @param bytes The datagram.
   * @param from Where it came from.
   * @param now Current time in ms.
   * @returns Datagrams to send (none for anything unauthenticated).
   */
  async receive(bytes: Uint8Array, from: Source, now: number): Promise<Outgoing[]> {
    let d: Datagram;
    try {
      d = decodeDatagram(bytes);
    } catch {
      this.#stats.malformed++;
      return [];
    }
    if (d.type !== "RDV" && d.type !== "RELAY") {
      this.#stats.malformed++;
      return [];
    }
    const entry = this.#byHandle.get(encodeBase64(d.handle));
    if (!entry) {
      this.#stats.unknownHandle++;
      return [];
    }
    // The replay window is consulted before the MAC and moved only after it verifies.
    entry.window ??= new ReplayWindow();
    if (!entry.window.check(d.counter)) {
      this.#stats.replayed++;
      return [];
    }
    if (this.#checking >= MAX_CHECKING || entry.checking >= MAX_CHECKING_PER_SESSION) {
      this.#stats.overloaded++;
      return [];
    }
    this.#checking++;
    entry.checking++;
    let authentic: boolean;
    try {
      authentic = await verifyDatagramTag(await keyOf(entry), d);
    } finally {
      this.#checking--;
      entry.checking--;
    }
    if (!authentic) {
      this.#stats.badTag++;
      return [];
    }
    // The session may have ended while the MAC was checked.
    if (this.#bySession.get(entry.sessionId) !== entry || !entry.window!.accept(d.counter)) return [];
    if (d.type === "RDV") {
      this.#stats.rendezvous++;
      entry.endpoint = { hostname: from.hostname, port: from.port };
      const observed = from.hostname.includes(":")
        ? `[${from.hostname}]:${from.port}`
        : `${from.hostname}:${from.port}`;
      const ack = await encodeRdvAck(
        { handle: decodeBase64(entry.handle)!, counter: d.counter, observed },
        await keyOf(entry),
      );
      return [{ ...from, bytes: ack }];
    }
    // A relayed sender is where its datagrams come from, even before (or without) an RDV.
    entry.endpoint ??= { hostname: from.hostname, port: from.port };
    if (this.#relayTokens.take(entry.user, now) !== 0) {
      this.#stats.rateLimited++;
      return [];
    }
    const recipient = this.#bySession.get(d.to);
    if (!recipient?.endpoint) {
      this.#stats.noRecipient++;
      return [];
    }
    this.#stats.relayed++;
    const out = await encodeRelayed({ from: entry.sessionId, inner: d.inner }, await keyOf(recipient));
    return [{ ...recipient.endpoint, bytes: out }];
  }
}
