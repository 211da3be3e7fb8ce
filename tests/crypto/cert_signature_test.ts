import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import fc from "fast-check";
import { signatureHash } from "../../lib/crypto/_cert_signature.ts";
import { tlsServerEndPoint } from "../../lib/crypto/certificate.ts";

x509.cryptoProvider.set(crypto);

async function certificate(
  keyAlgorithm: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm,
  signingAlgorithm: Algorithm | RsaPssParams | EcdsaParams,
): Promise<Uint8Array<ArrayBuffer>> {
  const keys = await crypto.subtle.generateKey(keyAlgorithm, true, ["sign", "verify"]) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=test",
    notBefore: new Date("2026-01-01"),
    notAfter: new Date("2027-01-01"),
    signingAlgorithm,
    keys,
  });
  return new Uint8Array(cert.rawData);
}

const rsa = (hash: string): RsaHashedKeyGenParams => ({
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash,
});

Deno.test("signatureHash reads the hash of ECDSA, RSA and RSA-PSS certificates as @peculiar/x509 does", async () => {
  const cases: [string, Uint8Array<ArrayBuffer>, string | null][] = [
    [
      "ECDSA P-256 SHA-256",
      await certificate(
        { name: "ECDSA", namedCurve: "P-256" },
        { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
      ),
      "SHA-256",
    ],
    [
      "ECDSA P-384 SHA-384",
      await certificate(
        { name: "ECDSA", namedCurve: "P-384" },
        { name: "ECDSA", hash: "SHA-384" } as EcdsaParams,
      ),
      "SHA-384",
    ],
    [
      "ECDSA P-256 SHA-512",
      await certificate(
        { name: "ECDSA", namedCurve: "P-256" },
        { name: "ECDSA", hash: "SHA-512" } as EcdsaParams,
      ),
      "SHA-512",
    ],
    ["RSA SHA-256", await certificate(rsa("SHA-256"), { name: "RSASSA-PKCS1-v1_5" }), "SHA-256"],
    ["RSA SHA-384", await certificate(rsa("SHA-384"), { name: "RSASSA-PKCS1-v1_5" }), "SHA-384"],
    ["RSA SHA-512", await certificate(rsa("SHA-512"), { name: "RSASSA-PKCS1-v1_5" }), "SHA-512"],
    [
      "RSA-PSS SHA-384",
      await certificate(
        { ...rsa("SHA-384"), name: "RSA-PSS" },
        { name: "RSA-PSS", saltLength: 48 } as RsaPssParams,
      ),
      "SHA-384",
    ],
    ["Ed25519", await certificate({ name: "Ed25519" }, { name: "Ed25519" }), null],
  ];
  for (const [name, der, expected] of cases) {
    assert.equal(signatureHash(der), expected, name);
    const library = (new x509.X509Certificate(der).signatureAlgorithm as { hash?: { name?: string } }).hash
      ?.name;
    assert.equal(signatureHash(der), library?.toUpperCase() ?? null, `${name}: as the library reads it`);
  }
});

Deno.test("tlsServerEndPoint hashes with the signature's hash, SHA-256 for SHA-1 and hash-less algorithms", async () => {
  const p384 = await certificate(
    { name: "ECDSA", namedCurve: "P-384" },
    { name: "ECDSA", hash: "SHA-384" } as EcdsaParams,
  );
  assert.deepEqual(
    await tlsServerEndPoint(p384),
    new Uint8Array(await crypto.subtle.digest("SHA-384", p384)),
  );
  const ed = await certificate({ name: "Ed25519" }, { name: "Ed25519" });
  assert.deepEqual(await tlsServerEndPoint(ed), new Uint8Array(await crypto.subtle.digest("SHA-256", ed)));
});

Deno.test("signatureHash refuses truncated and garbage input with TypeError, never anything else (property)", async () => {
  const der = await certificate(
    { name: "ECDSA", namedCurve: "P-256" },
    { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
  );
  for (let n = 0; n < der.length; n += 7) {
    assert.throws(() => signatureHash(der.subarray(0, n)), TypeError, `truncated to ${n} bytes`);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(255), (bytes, at, value) => {
      const mutated = der.slice();
      mutated[at % mutated.length] = value;
      for (const input of [bytes, mutated]) {
        try {
          signatureHash(input);
        } catch (err) {
          if (!(err instanceof TypeError)) throw err;
        }
      }
    }),
    { numRuns: 500 },
  );
});
