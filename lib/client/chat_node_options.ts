/**
 * What a {@linkcode ChatNode} is given (the logged-in control connection, pins, callbacks, tuning) and the
 * counters it keeps.
 *
 * @module
 */

import type { Identity } from "../crypto/identity_key.ts";
import type { ReliableChannelOptions } from "../transport/reliable_channel.ts";
import type { PeerInfo } from "./authchat_client.ts";
import type { KnownPeers } from "./known_peers.ts";

/** What the node needs from the logged-in control connection. */
export interface ChatControl {
  /** Our account name as stored. */
  user: string;
  /** Our identity key. */
  identity: Identity;
  /** UDP credentials from LOGIN. */
  udp: { port: number; handle: string; relayId: number; key: Uint8Array<ArrayBuffer> };
  /**
   * Ask the server where a user is.
   *
   * @param user The user.
   * @returns The PEER reply.
   */
  peer(user: string): Promise<PeerInfo>;
}

/** Options of {@linkcode ChatNode.start}. */
export interface ChatNodeOptions {
  /** The control connection's credentials and lookups. */
  control: ChatControl;
  /** Server host (the UDP rendezvous is on the same host). */
  serverHost: string;
  /** Pins of peers' identity keys, and the name of this server in that file. */
  knownPeers: KnownPeers;
  /** The server's name in the pin file (`host:port`). */
  serverName: string;
  /** A message arrived. */
  onMessage(from: string, text: string): void;
  /** Something the user must see (a refused key change). */
  onWarning(line: string): void;
  /** Send through the relay only (default false). */
  relayOnly?: boolean;
  /** How long a send may take before it fails (default 10 s). */
  sendTimeoutMs?: number;
  /** How long the rendezvous may take (default 5 s). */
  rendezvousTimeoutMs?: number;
  /** Without a reply this long on the direct path, use the relay (default 800 ms). */
  directTimeoutMs?: number;
  /** Reliable channel tuning (tests). */
  reliable?: ReliableChannelOptions;
  /** Cipher rekey threshold (tests). */
  rekeyAfter?: number;
}

/** Counters of a node: datagrams dropped and why. */
export interface ChatNodeStats {
  malformed: number;
  badServerTag: number;
  unknownSession: number;
  unknownSender: number;
  forged: number;
  replayed: number;
  badSignature: number;
  /** HS1s from users with no link dropped unchecked: too many server lookups were under way. */
  lookupsBusy: number;
  /** Datagrams dropped unread because too many were already waiting for the same link (or the socket). */
  overloaded: number;
  delivered: number;
  /** Messages a peer's new session carried again after an old one delivered them (lost acknowledgements), dropped. */
  repeated: number;
}
