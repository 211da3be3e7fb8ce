/**
 * Opening a client connection: plain TCP with `Deno.connect`, or TLS with
 * `node:tls` (which exposes the server certificate for pinning and channel
 * binding), and checking server keys against what the user trusts. A
 * connection that cannot be made fails with a {@linkcode ConnectError} saying
 * why (nothing listening, TLS on one side only, an unknown host, a timeout),
 * and so does a first reply that is not authchat.
 *
 * @module
 */

import tls from "node:tls";
import type { ChannelBindingType } from "../codec/scram_messages.ts";
import { tlsServerEndPoint } from "../crypto/certificate.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import type { ByteStream } from "../transport/byte_stream.ts";
import { NodeSocketStream } from "../transport/node_socket_stream.ts";
import { raceTimeout } from "../transport/race_timeout.ts";
import { TrustError } from "./known_hosts.ts";
import { memo } from "./_memo.ts";
import type { KeyKind, KnownHosts } from "./known_hosts.ts";
import { connectErrorFrom } from "./connect_error.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, endpointName } from "./endpoint.ts";
import type { Endpoint } from "./endpoint.ts";
import { FirstReadCheck } from "./_first_read_check.ts";

export { endpointName } from "./endpoint.ts";
export type { Endpoint } from "./endpoint.ts";

/** How server keys are trusted. With neither `ca` nor `fingerprint`, trust on first use. */
export interface TrustOptions {
  /** PEM of a CA (or of the server certificate itself) that must have signed the server certificate (TLS). */
  ca?: string;
  /** Expected fingerprint: of the certificate on TLS, of the sealing key on TCP. */
  fingerprint?: string;
  /** Known-hosts file for trust on first use. */
  knownHosts?: KnownHosts;
  /** Told when a key is trusted for the first time. */
  onNewKey?: (kind: KeyKind, endpoint: string, fingerprint: string) => void;
}

/** An open connection. */
export interface OpenedConnection {
  /** The byte stream. */
  stream: ByteStream;
  /** Channel binding data: of the certificate seen on TLS, of the handshake on a UDP session. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** The type of `channelBinding` (default `tls-server-end-point`). */
  channelBindingType?: ChannelBindingType;
  /** Fingerprint of the certificate seen (TLS only). */
  certFingerprint?: string;
}

/**
 * Check a server key against the trust options.
 *
 * @param kind Certificate or sealing key.
 * @param endpoint `host:port`.
 * @param seen Fingerprint of the key the server presented.
 * @param trust Trust options.
 * @throws {TrustError} When it does not match a pinned or remembered fingerprint.
 */
export async function checkServerKey(
  kind: KeyKind,
  endpoint: string,
  seen: string,
  trust: TrustOptions,
): Promise<void> {
  if (trust.fingerprint !== undefined) {
    if (trust.fingerprint !== seen) {
      throw new TrustError(
        `Server ${
          kind === "tls" ? "certificate" : "sealing key"
        } of ${endpoint} does not match --fingerprint: ` +
          `expected ${trust.fingerprint}, got ${seen}`,
      );
    }
    return;
  }
  if (kind === "tls" && trust.ca !== undefined) return;
  if (!trust.knownHosts) throw new TrustError(`No way to trust ${endpoint}: pass --ca or --fingerprint`);
  if (await trust.knownHosts.verify(endpoint, kind, seen) === "new") trust.onNewKey?.(kind, endpoint, seen);
}

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
 * Connect, and on TLS check the certificate before anything is sent.
 *
 * @param endpoint Where.
 * @param trust How the certificate is trusted.
 * @returns The connection; its first read throws a {@linkcode ConnectError} when the server's first reply
 *   is not authchat (a TLS port reached without TLS, a web server) or it closes without answering.
 * @throws {ConnectError} When the connection cannot be made (refused, timed out, unknown host, not TLS).
 * @throws {TrustError} When the certificate is not trusted.
 */
export async function openConnection(endpoint: Endpoint, trust: TrustOptions): Promise<OpenedConnection> {
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
