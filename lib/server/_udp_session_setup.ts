/**
 * Builds a server's {@linkcode UdpSessions} from its configuration and identity: the signing key (an Ed25519
 * key under a credential of the certificate TLS serves, made at start and renewed daily), and the cookie
 * master secret derived from the store's mock secret (so every node sharing the database accepts the others'
 * cookies, docs/PROTOCOL.md §20.2).
 *
 * @module
 */

import { UdpCookies } from "../crypto/udp_cookie.ts";
import { deriveCookieMaster } from "../crypto/udp_cookie_master.ts";
import { delegatedAcceptFits, DelegatedSigner } from "../crypto/udp_delegated_credential.ts";
import { importUdpSigningKey } from "../crypto/udp_server_signature.ts";
import type { ServerIdentity } from "../crypto/server_identity.ts";
import { UdpSessionStream } from "../transport/udp_session_stream.ts";
import type { Outgoing } from "./udp_rendezvous.ts";
import type { ServerConfig } from "./server_config.ts";
import { type UdpEstablished, UdpSessions } from "./udp_sessions.ts";

/** What the server hands over. */
export interface UdpSessionSetup {
  config: Pick<
    ServerConfig,
    "udp_handshake_threshold" | "udp_half_open_threshold" | "udp_half_open_max" | "max_unauthenticated_per_ip"
  >;
  identity: Pick<ServerIdentity, "certPem" | "keyPem">;
  mockSecret: Uint8Array<ArrayBuffer>;
  transmit(out: Outgoing): void;
  onEstablished(session: UdpEstablished): void;
}

/**
 * Make the server's UDP sessions.
 *
 * @param setup Configuration, identity, the store's mock secret and the server's callbacks.
 * @returns The sessions.
 * @throws {TypeError} When the certificate or key is missing or cannot sign handshakes.
 */
export async function createUdpSessions(setup: UdpSessionSetup): Promise<UdpSessions> {
  const { certPem, keyPem } = setup.identity;
  if (!certPem || !keyPem) throw new TypeError("UDP sessions are on but no certificate was loaded");
  const { config } = setup;
  const certificateKey = await importUdpSigningKey(certPem, keyPem);
  // A certificate too large for the delegated ACCEPT (within 102 bytes of the bound) signs directly.
  const signingKey = await delegatedAcceptFits(certificateKey)
    ? new DelegatedSigner(certificateKey)
    : certificateKey;
  // The first credential now: a key that cannot sign one fails the start, not the first handshake.
  if (signingKey instanceof DelegatedSigner) await signingKey.current(Date.now());
  return new UdpSessions({
    cookies: new UdpCookies(await deriveCookieMaster(setup.mockSecret)),
    signingKey,
    difficulty: {
      handshakesPerSecond: config.udp_handshake_threshold,
      halfOpen: config.udp_half_open_threshold,
    },
    maxHalfOpen: config.udp_half_open_max || 4 * config.udp_half_open_threshold,
    // A half-open session counts against its address as a TLS handshake in progress does.
    maxHalfOpenPerAddress: config.max_unauthenticated_per_ip,
    // The dead timeout is the stream's default (PROTOCOL 20.11); the session engine's own deadlines
    // (keepalive_timeout, idle_timeout) end a silent session as on TCP.
    openStream: ({ records, send }) => new UdpSessionStream({ records, send }),
    transmit: setup.transmit,
    onEstablished: setup.onEstablished,
  });
}
