/**
 * `--ca` for a certificate that did not come through TLS (the ACCEPT of a UDP
 * session, docs/PROTOCOL.md 20.10): the checks a TLS client makes with a CA
 * file, for a chain of one — the certificate is one of the CA file's
 * certificates (a pinned self-signed server certificate), or was issued and
 * signed by one; it is within its validity period; its subjectAltName names
 * the host. Parsing and signature checks are `node:crypto`'s `X509Certificate`;
 * the subjectAltName's DNS names are read with `@peculiar/asn1-x509`, loaded
 * on first use, because Deno's `checkHost` also matches the subject's CN (a
 * TLS client never does) and its `subjectAltName` text is ambiguous (a DNS
 * name may itself contain `, DNS:`).
 *
 * @module
 */

import { X509Certificate } from "node:crypto";

type Asn1 = [typeof import("@peculiar/asn1-schema"), typeof import("@peculiar/asn1-x509")];
let asn1: Promise<Asn1> | undefined;

/** Why {@linkcode checkCertificateWithCa} refused a certificate. */
export type CaRefusal =
  /** The certificate or the CA file does not parse (or the file holds no certificate). */
  | "bad-certificate"
  /**
   * Neither one of the CA file's certificates nor signed by one (that is a CA, within its validity), or
   * issued for another purpose than a TLS server (an extendedKeyUsage without serverAuth, or a CA
   * certificate: basicConstraints CA:TRUE).
   */
  | "untrusted"
  /** Outside its validity period. */
  | "expired"
  /** Its subjectAltName does not name the host (or IP address) connected to. */
  | "wrong-host";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const IP = /^[0-9.]+$|:/;

/**
 * Check a server certificate against a CA file, as a TLS client with `--ca` would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkCertificateWithCa } from "./ca_check.ts";
 * import { mintServerCertificate } from "./certificate.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const other = await mintServerCertificate({ days: 1 });
 * assert(await checkCertificateWithCa(cert.certDer, cert.certPem, { host: "localhost" }) === null);
 * assert(await checkCertificateWithCa(cert.certDer, other.certPem, { host: "localhost" }) === "untrusted");
 * ```
 *
 * @param certDer The certificate the server presented, DER.
 * @param caPem The CA file's text: one or more PEM certificates.
 * @param options The host connected to (name or IP address) and the time (ms since the epoch, default now).
 * @returns `null` when trusted, else why not. Never rejects on bad input.
 */
export async function checkCertificateWithCa(
  certDer: Uint8Array,
  caPem: string,
  options: { host: string; now?: number },
): Promise<CaRefusal | null> {
  let cert: X509Certificate;
  let cas: X509Certificate[];
  try {
    cert = new X509Certificate(certDer);
    cas = (caPem.match(PEM_BLOCK) ?? []).map((pem) => new X509Certificate(pem));
  } catch {
    return "bad-certificate";
  }
  if (cas.length === 0) return "bad-certificate";
  const now = options.now ?? Date.now();
  let trusted: boolean;
  let current: boolean;
  let isCa: boolean;
  try {
    // An issuing CA must itself be within its validity period, as in a TLS client's chain check.
    trusted = cas.some((ca) =>
      ca.raw.equals(cert.raw) ||
      (ca.subject === cert.issuer && ca.ca && within(ca, now) && verifies(cert, ca))
    );
    current = within(cert, now);
    // A TLS client (rustls: CaUsedAsEndEntity) never takes a CA certificate for the server's own.
    isCa = cert.ca;
  } catch {
    // A certificate that parses can still throw when a field is read (an issuer name of bad attributes).
    return "bad-certificate";
  }
  if (!trusted || isCa) return "untrusted";
  if (!current) return "expired";
  const extensions = await readExtensions(cert.raw);
  if (extensions === null) return "bad-certificate";
  if (!extensions.serverAuth) return "untrusted";
  const host = options.host.replace(/^\[|\]$/g, "");
  return (IP.test(host) ? namesIp(cert, host) : extensions.dnsNames.includes(asciiLower(host)))
    ? null
    : "wrong-host";
}

/** Whether the subjectAltName holds the IP address (`checkIP` reads only that); `1.2.3` names nothing. */
function namesIp(cert: X509Certificate, host: string): boolean {
  try {
    return cert.checkIP(host) !== undefined;
  } catch {
    return false;
  }
}

/**
 * What `X509Certificate` does not say exactly: the subjectAltName's DNS names, ASCII lower case (DNS names
 * compare case-insensitively; no wildcard is expanded, so `*.example` names only itself), and whether the
 * certificate may serve TLS: no extendedKeyUsage, or one that lists serverAuth (as rustls asks;
 * anyExtendedKeyUsage is not enough). `null` when the certificate or one of these extensions does not parse.
 */
async function readExtensions(der: Uint8Array): Promise<{ dnsNames: string[]; serverAuth: boolean } | null> {
  asn1 ??= Promise.all([import("@peculiar/asn1-schema"), import("@peculiar/asn1-x509")]);
  const [{ AsnConvert }, x509] = await asn1;
  try {
    const extensions = AsnConvert.parse(der, x509.Certificate).tbsCertificate.extensions ?? [];
    const value = (id: string) => extensions.find((e) => e.extnID === id)?.extnValue.buffer;
    const san = value(x509.id_ce_subjectAltName);
    const usage = value(x509.id_ce_extKeyUsage);
    return {
      dnsNames: san === undefined ? [] : AsnConvert.parse(san, x509.SubjectAlternativeName)
        .flatMap((name) => name.dNSName === undefined ? [] : [asciiLower(name.dNSName)]),
      serverAuth: usage === undefined ||
        AsnConvert.parse(usage, x509.ExtendedKeyUsage).includes(x509.id_kp_serverAuth),
    };
  } catch {
    return null;
  }
}

/** Lower-case A–Z only: `toLowerCase` would also fold non-ASCII letters (U+212A KELVIN SIGN to `k`). */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function verifies(cert: X509Certificate, ca: X509Certificate): boolean {
  try {
    return cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

function within(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}
