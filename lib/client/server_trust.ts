/**
 * Whether a server's key is the one the user trusts (docs/PROTOCOL.md section 11 and 20.10): a pinned
 * `--fingerprint`, a `--ca` file, or trust on first use in `known_hosts`. TLS checks `--ca` inside the
 * handshake; a UDP session's certificate, which arrives in its ACCEPT, is checked here against the same
 * file, as a TLS client would.
 *
 * @module
 */

import { checkCertificateWithCa } from "../crypto/ca_check.ts";
import type { CaRefusal } from "../crypto/ca_check.ts";
import { endpointName } from "./endpoint.ts";
import { TrustError } from "./known_hosts.ts";
import type { KeyKind, KnownHosts } from "./known_hosts.ts";

/** How server keys are trusted. With neither `ca` nor `fingerprint`, trust on first use. */
export interface TrustOptions {
  /** PEM of a CA (or of the server certificate itself) that must have signed the server certificate (TLS, UDP). */
  ca?: string;
  /** Expected fingerprint: of the certificate on TLS and UDP sessions, of the sealing key on TCP. */
  fingerprint?: string;
  /** Known-hosts file for trust on first use. */
  knownHosts?: KnownHosts;
  /** Told when a key is trusted for the first time. */
  onNewKey?: (kind: KeyKind, endpoint: string, fingerprint: string) => void;
}

/** What each kind of key is called in messages. */
const KEY_NAMES: Record<KeyKind, string> = {
  tls: "certificate",
  udp: "certificate",
  seal: "sealing key",
};

/**
 * Check a server key against the trust options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkServerKey } from "./server_trust.ts";
 * const pinned = "SHA256:" + "A".repeat(43);
 * await checkServerKey("tls", "127.0.0.1:1992", pinned, { fingerprint: pinned });
 * await assert.rejects(() => checkServerKey("udp", "127.0.0.1:1991", "SHA256:" + "B".repeat(43), { fingerprint: pinned }));
 * ```
 *
 * @param kind TLS certificate, UDP session certificate or sealing key.
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
        `Server ${KEY_NAMES[kind]} of ${endpoint} does not match --fingerprint: ` +
          `expected ${trust.fingerprint}, got ${seen}`,
      );
    }
    return;
  }
  // TLS checked the CA in its handshake; a UDP session's certificate is checked by checkUdpCertificate.
  if (kind !== "seal" && trust.ca !== undefined) return;
  if (!trust.knownHosts) throw new TrustError(`No way to trust ${endpoint}: pass --ca or --fingerprint`);
  if (await trust.knownHosts.verify(endpoint, kind, seen) === "new") trust.onNewKey?.(kind, endpoint, seen);
}

const CA_REFUSALS: Record<CaRefusal, string> = {
  "bad-certificate": "the certificate or the CA file does not parse",
  untrusted: "it is not signed by the CA file's certificates, or not for a TLS server",
  expired: "it is outside its validity period",
  "wrong-host": "its subjectAltName does not name the host",
};

/**
 * Check the certificate a UDP session's ACCEPT carried, before anything is sent to the server: against
 * `--ca` as a TLS client would (one of the file's certificates or signed by one, valid now, for a TLS
 * server, naming the host in its subjectAltName), else as {@linkcode checkServerKey} does with kind `udp`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "../crypto/certificate.ts";
 * import { fingerprint } from "../crypto/fingerprint.ts";
 * import { checkUdpCertificate } from "./server_trust.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const seen = { certificate: cert.certDer, fingerprint: await fingerprint(cert.certDer) };
 * await checkUdpCertificate({ host: "localhost", port: 1991 }, seen, { ca: cert.certPem });
 * await assert.rejects(() => checkUdpCertificate({ host: "example.org", port: 1991 }, seen, { ca: cert.certPem }));
 * ```
 *
 * @param endpoint The host (name or IP address, as the user gave it) and port.
 * @param seen The certificate (DER) and its fingerprint.
 * @param trust Trust options.
 * @param now Milliseconds since the epoch (default now), for the validity period.
 * @throws {TrustError} When it is not trusted.
 */
export async function checkUdpCertificate(
  endpoint: { host: string; port: number },
  seen: { certificate: Uint8Array; fingerprint: string },
  trust: TrustOptions,
  now?: number,
): Promise<void> {
  const name = endpointName(endpoint);
  if (trust.fingerprint === undefined && trust.ca !== undefined) {
    const refusal = await checkCertificateWithCa(seen.certificate, trust.ca, {
      host: endpoint.host,
      ...(now === undefined ? {} : { now }),
    });
    if (refusal !== null) {
      throw new TrustError(
        `UDP session certificate of ${name} (${seen.fingerprint}) is not trusted by --ca: ${
          CA_REFUSALS[refusal]
        }`,
      );
    }
    return;
  }
  await checkServerKey("udp", name, seen.fingerprint, trust);
}
