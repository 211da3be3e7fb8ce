import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { checkCertificateWithCa } from "../../lib/crypto/ca_check.ts";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import { encodePem } from "../../lib/crypto/pem.ts";

x509.cryptoProvider.set(crypto);
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY = 86_400_000;
const now = Date.now();

async function keys(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
}

async function makeCa(name: string, isCa = true, notAfter = now + 30 * DAY) {
  const pair = await keys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: `CN=${name}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(notAfter),
    signingAlgorithm: ALG,
    keys: pair,
    extensions: [new x509.BasicConstraintsExtension(isCa, undefined, true)],
  });
  return { cert, pair, pem: encodePem("CERTIFICATE", new Uint8Array(cert.rawData)) };
}

async function issue(
  ca: Awaited<ReturnType<typeof makeCa>>,
  names: string[],
  notAfter = now + 10 * DAY,
  subject = "CN=server",
  extra: x509.Extension[] = [],
) {
  const leaf = await keys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "02",
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(notAfter),
    signingAlgorithm: ALG,
    publicKey: leaf.publicKey,
    signingKey: ca.pair.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension(
        names.map((value) => ({ type: /^[0-9.]+$/.test(value) ? "ip" as const : "dns" as const, value })),
      ),
      ...extra,
    ],
  });
  return new Uint8Array(cert.rawData);
}

Deno.test("checkCertificateWithCa accepts a certificate its CA issued, for a host it names", async () => {
  const ca = await makeCa("Test CA");
  const leaf = await issue(ca, ["chat.example", "192.0.2.7"]);
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "chat.example" }), null);
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "192.0.2.7" }), null);
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "evil.example" }), "wrong-host");
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "192.0.2.8" }), "wrong-host");
  // A bundle: the right CA need not come first.
  const other = await makeCa("Other CA");
  assert.equal(await checkCertificateWithCa(leaf, `${other.pem}\n${ca.pem}`, { host: "chat.example" }), null);
});

Deno.test("checkCertificateWithCa refuses another CA's certificate, even under the same name", async () => {
  const ca = await makeCa("Test CA");
  const impostor = await makeCa("Test CA");
  const leaf = await issue(impostor, ["chat.example"]);
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "chat.example" }), "untrusted");
  // At a time the CA has expired, what it issued is not trusted either.
  const shortCa = await makeCa("Short CA", true, now + DAY);
  const late = await issue(shortCa, ["chat.example"], now + 10 * DAY);
  assert.equal(await checkCertificateWithCa(late, shortCa.pem, { host: "chat.example" }), null);
  assert.equal(
    await checkCertificateWithCa(late, shortCa.pem, { host: "chat.example", now: now + 2 * DAY }),
    "untrusted",
  );
  // A certificate that is not a CA cannot issue one.
  const notCa = await makeCa("Leaf", false);
  assert.equal(
    await checkCertificateWithCa(await issue(notCa, ["chat.example"]), notCa.pem, { host: "chat.example" }),
    "untrusted",
  );
});

Deno.test("checkCertificateWithCa takes the server certificate itself as its CA, within its validity", async () => {
  const cert = await mintServerCertificate({ days: 2, hostnames: ["chat.example"] });
  assert.equal(await checkCertificateWithCa(cert.certDer, cert.certPem, { host: "chat.example" }), null);
  assert.equal(await checkCertificateWithCa(cert.certDer, cert.certPem, { host: "[::1]" }), null);
  assert.equal(
    await checkCertificateWithCa(cert.certDer, cert.certPem, { host: "chat.example", now: now + 3 * DAY }),
    "expired",
  );
  assert.equal(
    await checkCertificateWithCa(cert.certDer, cert.certPem, { host: "chat.example", now: now - DAY }),
    "expired",
  );
});

Deno.test("checkCertificateWithCa reports unparsable input instead of throwing", async () => {
  const cert = await mintServerCertificate({ days: 1 });
  assert.equal(
    await checkCertificateWithCa(new Uint8Array(5), cert.certPem, { host: "localhost" }),
    "bad-certificate",
  );
  assert.equal(
    await checkCertificateWithCa(cert.certDer, "no certificate here", { host: "localhost" }),
    "bad-certificate",
  );
  assert.equal(
    await checkCertificateWithCa(
      cert.certDer,
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
      {
        host: "localhost",
      },
    ),
    "bad-certificate",
  );
});

Deno.test("checkCertificateWithCa names the host from subjectAltName only, never from the subject's CN", async () => {
  // What a TLS client (rustls) does: a CA-issued certificate whose CN says chat.example but whose
  // subjectAltName does not is not a certificate for chat.example.
  const ca = await makeCa("Test CA");
  const leaf = await issue(ca, ["other.example"], now + 10 * DAY, "CN=chat.example");
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "chat.example" }), "wrong-host");
  assert.equal(await checkCertificateWithCa(leaf, ca.pem, { host: "other.example" }), null);
  // The usual certificate, whose CN is also in its subjectAltName, still names its host.
  const usual = await issue(ca, ["chat.example"], now + 10 * DAY, "CN=chat.example");
  assert.equal(await checkCertificateWithCa(usual, ca.pem, { host: "chat.example" }), null);
  assert.equal(await checkCertificateWithCa(usual, ca.pem, { host: "Chat.EXAMPLE" }), null);
  // One DNS name that reads as two in the subjectAltName text names neither.
  const glued = await issue(ca, ["a.example, DNS:victim.example"]);
  assert.equal(await checkCertificateWithCa(glued, ca.pem, { host: "victim.example" }), "wrong-host");
});

Deno.test("checkCertificateWithCa refuses a host that only looks like an IP address instead of throwing", async () => {
  const cert = await mintServerCertificate({ days: 1 });
  for (const host of ["1.2.3", "999.0.0.1", "1..2", ":::"]) {
    assert.equal(await checkCertificateWithCa(cert.certDer, cert.certPem, { host }), "wrong-host");
  }
});

Deno.test("checkCertificateWithCa never rejects on any one-byte change of the certificate", async () => {
  // The certificate comes from an ACCEPT: whoever signed it chose every byte. Some changes still parse but
  // make a getter (the issuer's name) throw.
  const cert = await mintServerCertificate({ days: 1 });
  const refusals = new Set<string | null>();
  for (let i = 0; i < cert.certDer.length; i++) {
    for (const value of [0xff, cert.certDer[i]! ^ 0x80]) {
      const bad = cert.certDer.slice();
      bad[i] = value;
      refusals.add(await checkCertificateWithCa(bad, cert.certPem, { host: "localhost" }));
    }
  }
  assert.ok(refusals.has("bad-certificate") && refusals.has("untrusted"), [...refusals].join());
});

Deno.test("checkCertificateWithCa refuses a certificate its CA issued for another purpose than a TLS server", async () => {
  // As rustls does: with an extendedKeyUsage, serverAuth must be in it. A CA that also issues client
  // certificates does not make them server certificates.
  const ca = await makeCa("Test CA");
  const usage = (...usages: x509.ExtendedKeyUsageType[]) => [new x509.ExtendedKeyUsageExtension(usages)];
  const client = await issue(
    ca,
    ["chat.example"],
    now + 10 * DAY,
    "CN=server",
    usage(x509.ExtendedKeyUsage.clientAuth),
  );
  assert.equal(await checkCertificateWithCa(client, ca.pem, { host: "chat.example" }), "untrusted");
  const both = await issue(
    ca,
    ["chat.example"],
    now + 10 * DAY,
    "CN=server",
    usage(x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth),
  );
  assert.equal(await checkCertificateWithCa(both, ca.pem, { host: "chat.example" }), null);
});

Deno.test("checkCertificateWithCa refuses a CA certificate as the server's, as a TLS client does", async () => {
  // rustls refuses an end-entity certificate with basicConstraints CA:TRUE (CaUsedAsEndEntity): a
  // sub-CA the CA issued, even one naming the host, is not a server certificate.
  const ca = await makeCa("Test CA");
  const pair = await keys();
  const subCa = await x509.X509CertificateGenerator.create({
    serialNumber: "03",
    subject: "CN=Sub CA",
    issuer: ca.cert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 10 * DAY),
    signingAlgorithm: ALG,
    publicKey: pair.publicKey,
    signingKey: ca.pair.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "chat.example" }]),
    ],
  });
  const der = new Uint8Array(subCa.rawData);
  assert.equal(await checkCertificateWithCa(der, ca.pem, { host: "chat.example" }), "untrusted");
  // Nor when the CA file holds that very certificate.
  const pem = encodePem("CERTIFICATE", der);
  assert.equal(await checkCertificateWithCa(der, pem, { host: "chat.example" }), "untrusted");
});
