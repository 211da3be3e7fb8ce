/**
 * The server's UDP side, sans I/O: a logged-in session proves itself with a
 * MAC'd RDV datagram and the server records the address it observed; RELAY
 * datagrams are forwarded, still end-to-end encrypted, between logged-in
 * users, each user rate-limited. Nothing unauthenticated is ever answered,
 * so the port cannot be used to amplify traffic. See docs/PROTOCOL.md,
 * "Rendezvous and relay".
 *
 * The other nodes are reached through a {@linkcode RelayRouting} (relay_routing.ts):
 * it hands out relay ids, carries a RELAY to a relay id this node does not
 * hold to the node that does (which tags it for its recipient and sends it
 * from its own socket: {@linkcode Rendezvous.deliver}), and learns from
 * {@linkcode RelayRouting.announce} where this node's users are, so `PEER` on
 * any node names a user's newest proven session wherever it lives. The
 * sender's relay budget is spent here, on the node that checked its tag,
 * before anything is forwarded.
 *
 * @module
 */

import { TokenBucket } from "../auth/token_bucket.ts";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import { decodeDatagram, encodeRdvAck, encodeRelayed } from "../codec/datagram.ts";
import type { Datagram } from "../codec/datagram.ts";
import { importUdpKey, tagDatagram, verifyDatagram } from "../crypto/datagram_tag.ts";
import type { UdpKey } from "../crypto/datagram_tag.ts";
import { ReplayWindow } from "../crypto/replay_window.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { SINGLE_NODE_RELAY } from "./relay_routing.ts";
import type { ForwardedDatagram, RelayRouting, RoutedEndpoint } from "./relay_routing.ts";
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
  /** Relayed datagrams handed to another node, whose session the relay id names. */
  forwarded: number;
  /** Relayed datagrams from a session that has no relay id (this node lost touch with the others). */
  noRelayId: number;
  /** Dropped unchecked because too many datagrams were being checked already. */
  overloaded: number;
}

interface Entry {
  sessionId: number;
  /** `null` while this node can hand out none (see {@linkcode RelayHandlers.reassign}). */
  relayId: number | null;
  user: string;
  /** When it registered: orders a user's sessions, newest last. */
  since: number;
  /** The handle as base64 (its bytes are decoded only to answer an RDV). */
  handle: string;
  /** The session's UDP key, imported when its first datagram comes (many sessions never send one). */
  rawKey: Uint8Array;
  key: Promise<UdpKey> | null;
  /** Made with the first datagram: most sessions of a busy server never send one. */
  window: ReplayWindow | null;
  endpoint: Source | null;
  /** Tag checks under way for this handle. */
  checking: number;
}

/** A user's sessions here, and the endpoint last announced for them. */
interface UserEntries {
  entries: Set<Entry>;
  announced: RoutedEndpoint | null;
}

function sameEndpoint(a: RoutedEndpoint | null, b: RoutedEndpoint | null): boolean {
  return a === b ||
    (a !== null && b !== null && a.relayId === b.relayId && a.hostname === b.hostname &&
      a.port === b.port && a.since === b.since);
}

/** Whether `a` is a newer session than `b`. */
function newer(a: RoutedEndpoint, b: RoutedEndpoint): boolean {
  return a.since > b.since || (a.since === b.since && a.relayId > b.relayId);
}

const HANDLE_BYTES = 16;

function keyOf(entry: Entry): Promise<UdpKey> {
  return entry.key ??= importUdpKey(entry.rawKey);
}
/** MAC checks under way at once at most: a flood must not queue them without bound. */
export const MAX_CHECKING = 1024;
/** MAC checks under way at once for one session's handle, so one flood cannot take all of them. */
export const MAX_CHECKING_PER_SESSION = 64;

/** Options of {@linkcode Rendezvous}. */
export interface RendezvousOptions {
  /** How many datagrams per second each user may relay (also the burst). */
  relayPerSecond: number;
  /** The other nodes (default {@linkcode SINGLE_NODE_RELAY}: none, the relay id is the session id). */
  routing?: RelayRouting;
  /** Wall clock in ms, for the order of a user's sessions across nodes (default `Date.now`). */
  now?: () => number;
}

/**
 * The rendezvous and relay.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rendezvous } from "./udp_rendezvous.ts";
 * const rendezvous = new Rendezvous({ relayPerSecond: 100 });
 * const { handle, relayId } = await rendezvous.register(7, "alice", new Uint8Array(32));
 * assert(handle.length === 24 && relayId === 7, "alone, the relay id is the session id");
 * assert(rendezvous.endpointOf("alice") === null);
 * ```
 */
export class Rendezvous implements SessionRendezvous {
  /** The bound UDP port (set by whoever binds the socket). */
  port = 0;
  #byHandle = new Map<string, Entry>();
  #bySession = new Map<number, Entry>();
  #byRelayId = new Map<number, Entry>();
  #byUser = new Map<string, UserEntries>();
  #routing: RelayRouting;
  #now: () => number;
  #lastSince = -Infinity;
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
    forwarded: 0,
    noRelayId: 0,
    overloaded: 0,
  };
  #checking = 0;

  /**
   * Make the rendezvous.
   *
   * @param options The relay budget, the other nodes, the clock.
   */
  constructor(options: RendezvousOptions) {
    this.#routing = options.routing ?? SINGLE_NODE_RELAY;
    this.#now = options.now ?? Date.now;
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
    const relayId = this.#routing.allocate(sessionId);
    if (relayId === null) {
      return Promise.reject(
        new ProtocolError(
          "UNAVAILABLE",
          "Relay unavailable: this node lost touch with the others, try again",
        ),
      );
    }
    const text = encodeBase64(crypto.getRandomValues(new Uint8Array(HANDLE_BYTES)));
    // Strictly increasing here, so this node's sessions keep their order whatever the clock does.
    const since = this.#lastSince = Math.max(this.#now(), this.#lastSince + 1);
    const entry: Entry = {
      sessionId,
      relayId,
      user,
      since,
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
    this.#byRelayId.set(relayId, entry);
    const mine = this.#byUser.get(user) ?? { entries: new Set(), announced: null };
    mine.entries.add(entry);
    this.#byUser.set(user, mine);
    return Promise.resolve({ handle: text, relayId });
  }

  unregister(sessionId: number): void {
    const entry = this.#bySession.get(sessionId);
    if (!entry) return;
    this.#bySession.delete(sessionId);
    this.#byHandle.delete(entry.handle);
    if (entry.relayId !== null) {
      this.#byRelayId.delete(entry.relayId);
      this.#routing.release(entry.relayId);
    }
    const mine = this.#byUser.get(entry.user);
    if (!mine) return;
    mine.entries.delete(entry);
    if (entry.endpoint) this.#announce(entry.user, mine);
    if (mine.entries.size === 0) {
      this.#byUser.delete(entry.user);
      this.#relayTokens.forget(entry.user);
    }
  }

  /** The newest session of a user here that proved an address and has a relay id. */
  #newestHere(mine: UserEntries | undefined): RoutedEndpoint | null {
    let best: Entry | null = null;
    for (const entry of mine?.entries ?? []) {
      if (!entry.endpoint || entry.relayId === null) continue;
      if (!best || entry.since > best.since) best = entry;
    }
    return best?.endpoint && best.relayId !== null
      ? {
        relayId: best.relayId,
        hostname: best.endpoint.hostname,
        port: best.endpoint.port,
        since: best.since,
      }
      : null;
  }

  /** Tell the other nodes when the newest proven session of a user here changed. */
  #announce(user: string, mine: UserEntries): void {
    const newest = this.#newestHere(mine);
    if (sameEndpoint(newest, mine.announced)) return;
    mine.announced = newest;
    this.#routing.announce(user, newest);
  }

  endpointOf(user: string): UdpEndpoint | null {
    // The newest session that proved an address, here or on another node: the same one every time,
    // whichever refreshed last.
    const here = this.#newestHere(this.#byUser.get(user));
    const elsewhere = this.#routing.endpointElsewhere(user);
    const best = here && elsewhere ? (newer(elsewhere, here) ? elsewhere : here) : here ?? elsewhere;
    return best ? { relayId: best.relayId, hostname: best.hostname, port: best.port } : null;
  }

  /**
   * The relay ids handed out so far are void: give every session a new one (or none, while the routing
   * has none to give) and announce the users again. See {@linkcode RelayHandlers.reassign}.
   */
  reassign(): void {
    this.#byRelayId.clear();
    for (const entry of this.#bySession.values()) {
      entry.relayId = this.#routing.allocate(entry.sessionId);
      if (entry.relayId !== null) this.#byRelayId.set(entry.relayId, entry);
    }
    // The routing forgot what it announced under the void ids.
    for (const [user, mine] of this.#byUser) {
      mine.announced = null;
      this.#announce(user, mine);
    }
  }

  /**
   * A datagram another node forwarded for one of this node's sessions: tagged for its recipient, to be sent
   * from this node's socket. Dropped (and counted) when the recipient is gone or unproven, or the inner
   * datagram is not a peer datagram.
   *
   * @param datagram The datagram, as {@linkcode RelayRouting.forward} carried it.
   * @returns The datagram to send, if any.
   */
  async deliver(datagram: ForwardedDatagram): Promise<Outgoing[]> {
    const recipient = this.#byRelayId.get(datagram.to);
    if (!recipient?.endpoint) {
      this.#stats.noRecipient++;
      return [];
    }
    let out: Uint8Array;
    try {
      out = await tagDatagram(
        await keyOf(recipient),
        encodeRelayed({ from: datagram.from, inner: datagram.inner }),
      );
    } catch {
      this.#stats.malformed++;
      return [];
    }
    this.#stats.relayed++;
    return [{ ...recipient.endpoint, bytes: out }];
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
      authentic = await verifyDatagram(await keyOf(entry), d);
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
      this.#observed(entry, from, true);
      const observed = from.hostname.includes(":")
        ? `[${from.hostname}]:${from.port}`
        : `${from.hostname}:${from.port}`;
      const ack = await tagDatagram(
        await keyOf(entry),
        encodeRdvAck({ handle: decodeBase64(entry.handle)!, counter: d.counter, observed }),
      );
      return [{ ...from, bytes: ack }];
    }
    // A relayed sender is where its datagrams come from, even before (or without) an RDV.
    this.#observed(entry, from, false);
    if (this.#relayTokens.take(entry.user, now) !== 0) {
      this.#stats.rateLimited++;
      return [];
    }
    if (entry.relayId === null) {
      this.#stats.noRelayId++;
      return [];
    }
    const recipient = this.#byRelayId.get(d.to);
    if (!recipient) {
      // Another node's session, or nobody's.
      if (this.#routing.forward({ to: d.to, from: entry.relayId, inner: d.inner })) this.#stats.forwarded++;
      else this.#stats.noRecipient++;
      return [];
    }
    if (!recipient.endpoint) {
      this.#stats.noRecipient++;
      return [];
    }
    this.#stats.relayed++;
    const out = await tagDatagram(
      await keyOf(recipient),
      encodeRelayed({ from: entry.relayId, inner: d.inner }),
    );
    return [{ ...recipient.endpoint, bytes: out }];
  }

  /** Record where a session's authentic datagram came from (an RDV moves it, a RELAY only sets it). */
  #observed(entry: Entry, from: Source, moves: boolean): void {
    const old = entry.endpoint;
    if (old && (!moves || (old.hostname === from.hostname && old.port === from.port))) return;
    entry.endpoint = { hostname: from.hostname, port: from.port };
    const mine = this.#byUser.get(entry.user);
    if (mine) this.#announce(entry.user, mine);
  }
}
