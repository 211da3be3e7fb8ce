/**
 * Opening a client connection: plain TCP with `Deno.connect`, TLS with
 * `node:tls` (which exposes the server certificate for pinning and channel
 * binding), or a session over UDP (`open_udp_session.ts`), and checking
 * server keys against what the user trusts. A
 * connection that cannot be made fails with a {@linkcode ConnectError} saying
 * why (nothing listening, TLS on one side only, an unknown host, a timeout),
 * and so does a first reply that is not authchat.
 *
 * @module
 */

import tls from "node:tls";
import { tlsServerEndPoint } from "../crypto/certificate.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import { NodeSocketStream } from "../transport/node_socket_stream.ts";
import { raceTimeout } from "../transport/race_timeout.ts";
import { TrustError } from "./known_hosts.ts";
import { memo } from "./_memo.ts";
import { connectErrorFrom } from "./connect_error.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, endpointName } from "./endpoint.ts";
import type { Endpoint } from "./endpoint.ts";
import { FirstReadCheck } from "./_first_read_check.ts";
import { openUdpSession } from "./open_udp_session.ts";
import type { UdpSessionOptions } from "./open_udp_session.ts";
import type { OpenedConnection } from "./opened_connection.ts";
import { checkServerKey } from "./server_trust.ts";
import type { TrustOptions } from "./server_trust.ts";

export { endpointName } from "./endpoint.ts";
export type { Endpoint } from "./endpoint.ts";
export type { OpenedConnection } from "./opened_connection.ts";
export { checkServerKey } from "./server_trust.ts";
export type { TrustOptions } from "./server_trust.ts";
export type { UdpSessionOptions } from "./open_udp_session.ts";

const IP = /^[0-9.]+$|:/;

/**
 * Channel bindings of certificates already seen, by fingerprint: working one out parses the certificate,
 * which costs more than the rest of a reconnection.
 */
const bindings = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function bindingFor(certFingerprint: string, der: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  return memo(bindings, certFingerprint, () => tlsServerEndPoint(der));
}

function connectTls(endpoint: Endpoint, ca: string | undefined): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(IP.test(endpoint.host) ? {} : { servername: endpoint.host }),
      ...(ca === undefined ? { rejectUnauthorized: false } : { ca, rejectUnauthorized: true }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      const timedOut = new Deno.errors.TimedOut(`TLS connection to ${endpointName(endpoint)} timed out`);
      reject(connectErrorFrom(timedOut, endpoint) ?? timedOut);
    }, endpoint.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      // Refused, unresolvable, not TLS at all: no certificate was seen, so it is no matter of trust.
      const failed = connectErrorFrom(err, endpoint);
      reject(
        failed ??
          (ca !== undefined
            ? new TrustError(`TLS verification of ${endpointName(endpoint)} failed: ${err.message}`)
            : err),
      );
    });
  });
}

/**
 * Connect, and on TLS and UDP sessions check the certificate before anything is sent.
 *
 * @param endpoint Where, and over what (`tls`, `udp`).
 * @param trust How the certificate is trusted.
 * @param udp Options of a UDP session (the proof-of-work cap and progress).
 * @returns The connection; its first read throws a {@linkcode ConnectError} when the server's first reply
 *   is not authchat (a TLS port reached without TLS, a web server) or it closes without answering.
 * @throws {ConnectError} When the connection cannot be made (refused, timed out, unknown host, not TLS, a
 *   proof of work refused).
 * @throws {TrustError} When the certificate is not trusted.
 */
export async function openConnection(
  endpoint: Endpoint,
  trust: TrustOptions,
  udp: UdpSessionOptions = {},
): Promise<OpenedConnection> {
  if (endpoint.udp) {
    if (endpoint.tls) {
      throw new TypeError("Invalid endpoint: a UDP session is not TLS (tls and udp both set)");
    }
    return await openUdpSession(endpoint, trust, udp);
  }
  if (!endpoint.tls) {
    const connecting = Deno.connect({ hostname: endpoint.host, port: endpoint.port });
    if (!await raceTimeout(connecting, endpoint.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS)) {
      connecting.then((late) => late.close(), () => {});
      const timedOut = new Deno.errors.TimedOut(`TCP connection to ${endpointName(endpoint)} timed out`);
      throw connectErrorFrom(timedOut, endpoint) ?? timedOut;
    }
    let conn: Deno.TcpConn;
    try {
      conn = await connecting;
    } catch (err) {
      throw connectErrorFrom(err, endpoint) ?? err;
    }
    conn.setNoDelay(true);
    return { stream: new FirstReadCheck(conn, endpoint) };
  }
  const socket = await connectTls(endpoint, trust.ca);
  try {
    socket.setNoDelay(true);
    const raw = socket.getPeerCertificate(true)?.raw;
    if (!raw) throw new TrustError(`Server ${endpointName(endpoint)} presented no certificate`);
    const der = new Uint8Array(raw);
    const certFingerprint = await fingerprint(der);
    await checkServerKey("tls", endpointName(endpoint), certFingerprint, trust);
    return {
      stream: new FirstReadCheck(new NodeSocketStream(socket), endpoint),
      channelBinding: new Uint8Array(await bindingFor(certFingerprint, der)),
      certFingerprint,
    };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}
