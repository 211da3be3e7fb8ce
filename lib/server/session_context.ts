/**
 * What every session of one server shares, and what a transport tells a
 * session about its connection.
 *
 * @module
 */

import type { ServerMessage } from "../codec/messages.ts";
import type { ChannelBindingType } from "../codec/scram_messages.ts";
import type { DeviceTokenKey } from "../crypto/device_token.ts";
import type { UserStore } from "../store/user_store.ts";
import type { Logger } from "./logger.ts";
import type { PresenceDirectory } from "./presence.ts";
import type { SessionRegistry } from "./session_registry.ts";
import type { AbuseLimits, SessionDirectory } from "./shared_parts.ts";

/** Shared state and settings of one server. */
export interface SessionContext {
  /** Account store. */
  store: UserStore;
  /**
   * Failure counters and backoff, the per-source budget of registrations (each costs a key derivation) and
   * the budgets of successful logins per source and per account (each is a presence change for everyone),
   * counted across every node.
   */
  limits: AbuseLimits;
  /** This node's live sessions. */
  registry: SessionRegistry;
  /** Ends a user's sessions on the other nodes. */
  sessions: SessionDirectory;
  /** Who is online. */
  presence: PresenceDirectory;
  /** The UDP rendezvous and relay, or `null` when UDP is off. */
  rendezvous: SessionRendezvous | null;
  /** Event log. */
  log: Logger;
  /** Clock in ms. */
  now(): number;
  /** Name shown in HELLO. */
  serverName: string;
  /** PBKDF2 iterations for new verifiers and mock exchanges. */
  iterations: number;
  /** Shortest password accepted. */
  passwordMinLength: number;
  /** Time a connection has to log in, ms. */
  authTimeoutMs: number;
  /** Time a logged-in session may stay silent, ms. */
  idleTimeoutMs: number;
  /** Time a session that sends keepalives (PING) may stay silent, ms. */
  keepaliveTimeoutMs: number;
  /** RSA-OAEP private key that sealed secrets are opened with. */
  sealPrivateKey: CryptoKey;
  /** The matching public key, base64 SubjectPublicKeyInfo, sent in HELLO. */
  sealPublicKey: string;
  /** Mock-exchange secret from the store. */
  mockSecret: Uint8Array<ArrayBuffer>;
  /**
   * Told the name of each step of work whose duration must not depend on a secret, in order: today the
   * start of a SCRAM exchange, which must not tell an account from a name nobody has. Tests record the
   * steps and compare the paths; servers leave it unset. A step added to such a path is reported here
   * (see {@linkcode StepTrace}).
   */
  trace?: StepTrace;
  /** Issues and checks device tokens; its key is derived from the mock secret (lib/crypto/device_token.ts). */
  deviceTokens: DeviceTokenKey;
}

/**
 * Receives the name of each step of a path that must take the same time whatever the secret (for example
 * `"store.findCredentials"`), in order.
 */
export type StepTrace = (step: string) => void;

/** Which transport a session runs on. */
export type TransportName = "tcp" | "tls" | "udp";

/** What a transport knows about its connection. */
export interface ConnectionInfo {
  /** Source IP address as observed. */
  peerAddress: string;
  /** Transport name, for logs. */
  transport: TransportName;
  /** Whether the channel itself is encrypted and authenticated (TLS, a UDP session). */
  confidential: boolean;
  /** Channel binding data: `tls-server-end-point` on TLS, `authchat-udp-exporter` on a UDP session. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** The type of `channelBinding` (default `tls-server-end-point`). */
  channelBindingType?: ChannelBindingType;
}

/** Something a session wants its transport to do. */
export type SessionOutput = { kind: "send"; message: ServerMessage } | { kind: "close" };

/** Receives a session's outputs, in order. */
export type SessionSink = (output: SessionOutput) => void;

/** Where a user's client can be reached over UDP. */
export interface UdpEndpoint {
  /** The session's relay id. */
  relayId: number;
  /** Address the server observed. */
  hostname: string;
  /** Port the server observed. */
  port: number;
}

/** What sessions need from the UDP rendezvous. */
export interface SessionRendezvous {
  /** The bound UDP port. */
  readonly port: number;
  /**
   * Let a logged-in session prove itself over UDP.
   *
   * @param sessionId The session.
   * @param user The account's lower-cased name.
   * @param sessionKey The key its SCRAM exchange produced (32 bytes).
   * @returns The handle its datagrams carry (base64) and its relay id (unique among every node's sessions).
   * @throws {ProtocolError} `UNAVAILABLE` when no relay id can be given now (the node lost touch with the
   *   other nodes).
   */
  register(
    sessionId: number,
    user: string,
    sessionKey: Uint8Array,
  ): Promise<{ handle: string; relayId: number }>;
  /**
   * Forget a session (logged out or gone).
   *
   * @param sessionId The session.
   */
  unregister(sessionId: number): void;
  /**
   * The endpoint of a user's newest proven session, on this node or another.
   *
   * @param user Lower-cased name.
   * @returns The endpoint, or `null` when none has proven itself.
   */
  endpointOf(user: string): UdpEndpoint | null;
}
