/**
 * The hash of a certificate's signature algorithm, read straight from its DER
 * (Certificate → signatureAlgorithm → OID, and the hash in RSASSA-PSS
 * parameters): all that the `tls-server-end-point` channel binding needs, without
 * loading an X.509 library (tens of megabytes of memory) into every server and
 * client. Tests compare it with `@peculiar/x509` on real certificates.
 *
 * @module
 */

/** Hashes a signature algorithm can name; anything else counts as SHA-256 for the channel binding. */
export type SignatureHash = "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512" | null;

const OIDS: Record<string, SignatureHash> = {
  // RSASSA-PKCS1-v1_5: 1.2.840.113549.1.1.{5,11,12,13}
  "2a864886f70d010105": "SHA-1",
  "2a864886f70d01010b": "SHA-256",
  "2a864886f70d01010c": "SHA-384",
  "2a864886f70d01010d": "SHA-512",
  // ECDSA: 1.2.840.10045.4.1 and 1.2.840.10045.4.3.{2,3,4}
  "2a8648ce3d0401": "SHA-1",
  "2a8648ce3d040302": "SHA-256",
  "2a8648ce3d040303": "SHA-384",
  "2a8648ce3d040304": "SHA-512",
  // Hash algorithms, as RSASSA-PSS parameters name them: 1.3.14.3.2.26, 2.16.840.1.101.3.4.2.{1,2,3}
  "2b0e03021a": "SHA-1",
  "608648016503040201": "SHA-256",
  "608648016503040202": "SHA-384",
  "608648016503040203": "SHA-512",
};
const RSASSA_PSS = "2a864886f70d01010a";

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function fail(): never {
  throw new TypeError("Invalid certificate: cannot read its signature algorithm");
}

/** One DER element at `pos`, within `limit`. */
function tlv(der: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) fail();
  const tag = der[pos]!;
  let length = der[pos + 1]!;
  let start = pos + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || start + octets > limit) fail();
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i]!;
    start += octets;
  }
  const end = start + length;
  if (end > limit) fail();
  return { tag, start, end };
}

function oidHex(der: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06) fail();
  return Array.from(der.subarray(t.start, t.end), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The hash a certificate's signature algorithm uses.
 *
 * @example
 * ```ts ignore
 * signatureHash(certDer); // "SHA-256" for an ECDSA P-256 certificate signed with SHA-256
 * ```
 *
 * @param der The certificate, DER.
 * @returns The hash, or `null` for an algorithm without a single hash (such as Ed25519).
 * @throws {TypeError} When the bytes are not a certificate.
 */
export function signatureHash(der: Uint8Array): SignatureHash {
  const cert = tlv(der, 0, der.length);
  if (cert.tag !== 0x30) fail();
  const tbs = tlv(der, cert.start, cert.end);
  if (tbs.tag !== 0x30) fail();
  const alg = tlv(der, tbs.end, cert.end);
  if (alg.tag !== 0x30) fail();
  const oid = oidHex(der, tlv(der, alg.start, alg.end));
  if (oid !== RSASSA_PSS) return OIDS[oid] ?? null;
  // RSASSA-PSS-params: SEQUENCE { [0] EXPLICIT hashAlgorithm DEFAULT sha1, ... }
  const oidEnd = tlv(der, alg.start, alg.end).end;
  if (oidEnd >= alg.end) return "SHA-1";
  const params = tlv(der, oidEnd, alg.end);
  if (params.tag !== 0x30) fail();
  if (params.start >= params.end) return "SHA-1";
  const first = tlv(der, params.start, params.end);
  if (first.tag !== 0xa0) return "SHA-1";
  const hashAlg = tlv(der, first.start, first.end);
  if (hashAlg.tag !== 0x30) fail();
  return OIDS[oidHex(der, tlv(der, hashAlg.start, hashAlg.end))] ?? null;
}
