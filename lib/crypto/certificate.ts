/**
 * Self-signed X.509 leaf certificates for the server (CA:FALSE, with
 * subjectAltName entries, so rustls accepts them) and the
 * `tls-server-end-point` channel binding of RFC 5929 §4.1.
 *
 * The X.509 library is loaded only to mint a certificate (keygen, or a server's
 * first start): held by every server and client it would cost tens of megabytes
 * of memory, and the channel binding needs only the signature algorithm.
 *
 * @module
 */

import type { JsonGeneralName } from "@peculiar/x509";
import { signatureHash } from "./_cert_signature.ts";
import { encodePem } from "./pem.ts";

type X509 = typeof import("@peculiar/x509");
let library: Promise<X509> | undefined;

function x509Library(): Promise<X509> {
  library ??= (async () => {
    await import("reflect-metadata");
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(crypto);
    return x509;
  })();
  return library;
}

/** Names always present in a minted certificate's subjectAltName. */
export const DEFAULT_NAMES: readonly string[] = ["localhost", "127.0.0.1", "::1"];

/** Options of {@linkcode mintServerCertificate}. */
export interface MintOptions {
  /** Host names and IP addresses; the defaults are added. */
  hostnames?: string[];
  /** Validity in days. */
  days: number;
  /** RSA-3072 instead of ECDSA P-256. */
  rsa?: boolean;
}

/** A certificate and its private key. */
export interface MintedCertificate {
  /** PEM certificate. */
  certPem: string;
  /** PEM PKCS#8 private key. */
  keyPem: string;
  /** DER certificate. */
  certDer: Uint8Array<ArrayBuffer>;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function isIp(name: string): boolean {
  return IPV4.test(name) || (name.includes(":") && /^[0-9a-fA-F:.]+$/.test(name));
}

/**
 * Mint a self-signed leaf certificate for a TLS server.
 *
 * @param options Names, validity and key type.
 * @returns Certificate and key.
 * @throws {RangeError} When `days` is not a positive integer.
 */
export async function mintServerCertificate(options: MintOptions): Promise<MintedCertificate> {
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > 36500) {
    throw new RangeError(`Invalid validity: ${options.days} days is not within 1..36500`);
  }
  const x509 = await x509Library();
  const names = [...new Set([...(options.hostnames ?? []), ...DEFAULT_NAMES])];
  const algorithm = options.rsa
    ? {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 3072,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as CryptoKeyPair;
  const usage = options.rsa
    ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
    : x509.KeyUsageFlags.digitalSignature;
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toHex(),
    name: `CN=${(names[0] ?? "authchat").replace(/[,+="\\<>;#]/g, "_")}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + options.days * 86_400_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        names.map((value): JsonGeneralName => ({ type: isIp(value) ? "ip" : "dns", value })),
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const certDer = new Uint8Array(cert.rawData);
  return { certPem: encodePem("CERTIFICATE", certDer), keyPem: encodePem("PRIVATE KEY", pkcs8), certDer };
}

/**
 * The `tls-server-end-point` channel binding data of a certificate: its hash
 * under the certificate's signature hash, with MD5 and SHA-1 replaced by SHA-256.
 *
 * @param certDer The server certificate, DER.
 * @returns The binding data.
 * @throws {TypeError} When the bytes are not a certificate.
 */
export async function tlsServerEndPoint(certDer: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const named = signatureHash(certDer);
  const hash = named === "SHA-384" || named === "SHA-512" ? named : "SHA-256";
  return new Uint8Array(await crypto.subtle.digest(hash, certDer));
}
