import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DEFAULT_NAMES, mintServerCertificate, tlsServerEndPoint } from "../../lib/crypto/certificate.ts";
import { decodePem } from "../../lib/crypto/pem.ts";
import { assertBytesEqual } from "../_bytes.ts";

x509.cryptoProvider.set(crypto);

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

function sanOf(cert: x509.X509Certificate): { type: string; value: string }[] {
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  assert.ok(ext, "subjectAltName present");
  return ext.names.toJSON().map((n) => ({ type: n.type, value: n.value }));
}

Deno.test("mintServerCertificate makes a CA:FALSE serverAuth leaf with the default and extra names", async () => {
  const before = Date.now();
  const minted = await mintServerCertificate({
    days: 30,
    hostnames: ["chat.example.com", "10.1.2.3", "fd00::5"],
  });
  const cert = new x509.X509Certificate(minted.certDer);

  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  assert.ok(bc);
  assert.equal(bc.ca, false);
  assert.equal(bc.critical, true);

  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  assert.ok(eku);
  assert.deepEqual([...eku.usages], [SERVER_AUTH]);

  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku);
  assert.ok(ku.usages & x509.KeyUsageFlags.digitalSignature);
  assert.equal(ku.usages & x509.KeyUsageFlags.keyCertSign, 0, "a leaf cannot sign certificates");

  const san = sanOf(cert);
  for (const dns of ["localhost", "chat.example.com"]) {
    assert.ok(san.some((n) => n.type === "dns" && n.value === dns), dns);
  }
  for (const ip of ["127.0.0.1", "::1", "10.1.2.3", "fd00::5"]) {
    assert.ok(san.some((n) => n.type === "ip" && n.value === ip), ip);
  }
  assert.equal(san.length, 6);
  assert.deepEqual(DEFAULT_NAMES, ["localhost", "127.0.0.1", "::1"]);

  assert.equal(cert.subject, "CN=chat.example.com");
  assert.equal(cert.issuer, cert.subject, "self-signed");
  assert.ok(await cert.verify({ date: new Date() }), "signature verifies with its own key");
  assert.deepEqual(cert.publicKey.algorithm, { name: "ECDSA", namedCurve: "P-256" });
  assert.ok(cert.notBefore.getTime() <= before);
  const days = (cert.notAfter.getTime() - before) / 86_400_000;
  assert.ok(days > 29.99 && days < 30.01, `valid for ${days} days`);
  const serial = cert.serialNumber;
  assert.equal(serial.length, 32, "16-byte serial");
  assert.ok(parseInt(serial.slice(0, 2), 16) < 0x80, "serial is positive");
});

Deno.test("mintServerCertificate PEM matches the DER and the key signs for the certificate", async () => {
  const minted = await mintServerCertificate({ days: 1 });
  assertBytesEqual(decodePem(minted.certPem, "CERTIFICATE"), minted.certDer);
  const key = await crypto.subtle.importKey(
    "pkcs8",
    decodePem(minted.keyPem, "PRIVATE KEY"),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const data = new TextEncoder().encode("probe");
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, data);
  const cert = new x509.X509Certificate(minted.certDer);
  const pub = await cert.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
  assert.ok(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, sig, data));
  assert.equal(cert.subject, "CN=localhost");
  assert.equal(sanOf(cert).length, 3, "no duplicates of the default names");
});

Deno.test("mintServerCertificate does not repeat a default name given as a hostname", async () => {
  const cert = new x509.X509Certificate(
    (await mintServerCertificate({ days: 1, hostnames: ["localhost", "::1"] })).certDer,
  );
  assert.equal(sanOf(cert).length, 3);
});

Deno.test("mintServerCertificate with rsa makes an RSA-3072 key allowed to encipher keys", async () => {
  const minted = await mintServerCertificate({ days: 10, rsa: true });
  const cert = new x509.X509Certificate(minted.certDer);
  const alg = cert.publicKey.algorithm as RsaHashedKeyAlgorithm;
  assert.equal(alg.name, "RSASSA-PKCS1-v1_5");
  assert.equal(alg.modulusLength, 3072);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku && ku.usages & x509.KeyUsageFlags.keyEncipherment);
  assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  assert.ok(await cert.verify({ date: new Date() }));
  assert.deepEqual(
    await tlsServerEndPoint(minted.certDer),
    new Uint8Array(createHash("sha256").update(minted.certDer).digest()),
  );
});

Deno.test("tlsServerEndPoint is the SHA-256 of the DER for an ECDSA-SHA256 certificate", async () => {
  const { certDer } = await mintServerCertificate({ days: 1 });
  const expected = new Uint8Array(createHash("sha256").update(certDer).digest());
  assert.deepEqual(await tlsServerEndPoint(certDer), expected);
});

Deno.test("tlsServerEndPoint hashes an ECDSA-SHA384 certificate with SHA-384", async () => {
  const alg = { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" };
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=p384",
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys,
  });
  const der = new Uint8Array(cert.rawData);
  assert.deepEqual(await tlsServerEndPoint(der), new Uint8Array(createHash("sha384").update(der).digest()));
});

Deno.test("tlsServerEndPoint refuses bytes that are not a certificate with a TypeError", async () => {
  await assert.rejects(tlsServerEndPoint(new Uint8Array([1, 2, 3])), TypeError);
});

Deno.test("mintServerCertificate refuses a validity that is not 1..36500 whole days", async () => {
  for (const days of [0, -1, 1.5, 36501, NaN]) {
    await assert.rejects(mintServerCertificate({ days }), RangeError, String(days));
  }
});
