/**
 * Relay routing: what the UDP rendezvous (udp_rendezvous.ts) needs from the
 * other nodes, behind an interface the server is given rather than makes
 * (docs/DESIGN: one composition root). It hands out relay ids, tells the
 * other nodes where this node's users can be reached, answers where another
 * node's users can, and carries RELAY datagrams to the node whose session a
 * relay id names.
 *
 * A relay id travels in datagrams as a u32 (`RELAY` `to`, `RELAYED` `from`),
 * so it must name one live session among every node's at any time: an
 * implementation that joins nodes gives each node ids no other node can hand
 * out while it holds them. The in-process default, {@linkcode SINGLE_NODE_RELAY},
 * uses the session id (unique in one process) and has nobody to tell.
 *
 * @module
 */

/** A user's endpoint as the nodes publish it: where, which relay id, and how new the session is. */
export interface RoutedEndpoint {
  /** The session's relay id. */
  relayId: number;
  /** Address the owning node observed. */
  hostname: string;
  /** Port the owning node observed. */
  port: number;
  /**
   * When the session registered, in ms on its node's clock (strictly increasing on one node): the newest
   * session of a user is the one with the greatest `since` (ties: the greater relay id).
   */
  since: number;
}

/** A relayed datagram on its way between nodes: still the sender's ciphertext, untagged. */
export interface ForwardedDatagram {
  /** The recipient's relay id (a session of the node it is sent to). */
  to: number;
  /** The sender's relay id (a session of the node it comes from: replies go there). */
  from: number;
  /** The peer datagram (`HS1`, `HS2` or `DATA`), byte for byte as the sender sent it. */
  inner: Uint8Array;
}

/** What the routing calls back on this node's rendezvous. */
export interface RelayHandlers {
  /**
   * A datagram forwarded by another node for one of this node's sessions: tag it for the recipient and
   * send it from this node's UDP socket.
   *
   * @param datagram The datagram.
   */
  deliver(datagram: ForwardedDatagram): void;
  /**
   * The relay ids handed out so far are void (this node lost its hold on them, so another node may hand
   * them out): give every session a new one from {@linkcode RelayRouting.allocate} and announce again.
   */
  reassign(): void;
}

/** How a node's rendezvous reaches the other nodes' sessions. */
export interface RelayRouting {
  /**
   * A relay id for a new session of this node: unique among the live sessions of every node, until
   * {@linkcode RelayRouting.release} or {@linkcode RelayHandlers.reassign}.
   *
   * @param sessionId The session (unique on this node).
   * @returns The id, or `null` when this node can give none now (it lost touch with the other nodes).
   */
  allocate(sessionId: number): number | null;
  /**
   * A session ended: its id may be handed out again later.
   *
   * @param relayId The id.
   */
  release(relayId: number): void;
  /**
   * The newest proven endpoint of a user on this node changed; the other nodes answer `PEER` with it.
   *
   * @param user Lower-cased account name.
   * @param endpoint The endpoint, or `null` when this node has no proven session of the user any more.
   */
  announce(user: string, endpoint: RoutedEndpoint | null): void;
  /**
   * The newest proven endpoint of a user on the other nodes (a node that stopped answering is left out).
   *
   * @param user Lower-cased account name.
   * @returns The endpoint, or `null`.
   */
  endpointElsewhere(user: string): RoutedEndpoint | null;
  /**
   * Carry a datagram to the node whose session `to` names.
   *
   * @param datagram The datagram.
   * @returns Whether it was sent on (`false`: no other node holds `to`).
   */
  forward(datagram: ForwardedDatagram): boolean;
  /**
   * Start calling this node's rendezvous back.
   *
   * @param handlers Its handlers.
   */
  serve(handlers: RelayHandlers): void;
}

/**
 * One node alone: the relay id is the session id, and there is nobody to tell or forward to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SINGLE_NODE_RELAY } from "./relay_routing.ts";
 * assert(SINGLE_NODE_RELAY.allocate(7) === 7);
 * assert(SINGLE_NODE_RELAY.endpointElsewhere("alice") === null);
 * ```
 */
export const SINGLE_NODE_RELAY: RelayRouting = Object.freeze({
  allocate: (sessionId: number) => sessionId,
  release: () => {},
  announce: () => {},
  endpointElsewhere: () => null,
  forward: () => false,
  serve: () => {},
});
