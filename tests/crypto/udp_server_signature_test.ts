import assert from "node:assert/strict";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import {
  importUdpSigningKey,
  SIGNATURE_CONTEXT,
  signedMessage,
  signTranscript,
  verifyServerSignature,
} from "../../lib/crypto/udp_server_signature.ts";
import { assertBytesEqual } from "../_bytes.ts";

const ec = await mintServerCertificate({ days: 1 });
const rsa = await mintServerCertificate({ days: 1, rsa: true });
const TH = new Uint8Array(32).map((_, i) => i);

Deno.test("signedMessage is the context string, a zero byte and the transcript hash", () => {
  const expected = new Uint8Array([...new TextEncoder().encode("authchat-udp/1 server signature"), 0, ...TH]);
  assertBytesEqual(signedMessage(TH), expected);
  assert.equal(SIGNATURE_CONTEXT.length, 31);
});

Deno.test("signTranscript signs with ECDSA P-256 SHA-256 or RSA-PSS SHA-256, as WebCrypto verifies", async () => {
  const cases = [
    [ec, "ecdsa-p256-sha256", { name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }],
    [rsa, "rsa-pss-sha256", { name: "RSA-PSS", hash: "SHA-256" }, { name: "RSA-PSS", saltLength: 32 }],
  ] as const;
  for (const [cert, algorithm, importParams, verifyParams] of cases) {
    const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
    assert.equal(key.algorithm, algorithm);
    assertBytesEqual(key.certificate, cert.certDer);
    const signature = await signTranscript(key, TH);
    // An independent check: the public key as the certificate's minting library exported it.
    const x509 = await import("@peculiar/x509");
    const spki = new Uint8Array(new x509.X509Certificate(cert.certDer).publicKey.rawData);
    const publicKey = await crypto.subtle.importKey("spki", spki, importParams, false, ["verify"]);
    assert.ok(await crypto.subtle.verify(verifyParams, publicKey, signature, signedMessage(TH)));
    // The context string is part of what is signed: a signature over the bare hash is another one.
    assert.ok(!await crypto.subtle.verify(verifyParams, publicKey, signature, TH));
    const input = { certificate: cert.certDer, algorithm, signature, transcriptHash: TH };
    assert.equal(await verifyServerSignature(input), null);
    const otherTh = TH.slice();
    otherTh[5]! ^= 1;
    assert.equal(await verifyServerSignature({ ...input, transcriptHash: otherTh }), "bad-signature");
    assert.equal(
      await verifyServerSignature({ ...input, signature: signature.subarray(1).slice() }),
      "bad-signature",
    );
  }
});

Deno.test("verifyServerSignature refuses a mismatched algorithm and a certificate that does not parse", async () => {
  const key = await importUdpSigningKey(ec.certPem, ec.keyPem);
  const signature = await signTranscript(key, TH);
  const input = { certificate: ec.certDer, algorithm: key.algorithm, signature, transcriptHash: TH };
  assert.equal(await verifyServerSignature({ ...input, algorithm: "rsa-pss-sha256" }), "algorithm-mismatch");
  assert.equal(await verifyServerSignature({ ...input, certificate: new Uint8Array(10) }), "bad-certificate");
  assert.equal(
    await verifyServerSignature({ ...input, certificate: ec.certDer.subarray(0, 200) }),
    "bad-certificate",
  );
});

Deno.test("importUdpSigningKey refuses a private key that is not the certificate's", async () => {
  const other = await mintServerCertificate({ days: 1 });
  await assert.rejects(importUdpSigningKey(ec.certPem, other.keyPem), TypeError);
  await assert.rejects(importUdpSigningKey(ec.certPem, rsa.keyPem), TypeError);
});

Deno.test("importUdpSigningKey refuses a certificate too large for an ACCEPT, at load rather than at every handshake", async () => {
  // 3561 body bytes hold 79 of fields, the certificate and the signature: an ECDSA certificate over 3418 bytes
  // cannot be sent, and ServerHandshake.respond would throw for every admitted INIT.
  const hostnames = Array.from({ length: 200 }, (_, i) => `host-${String(i).padStart(4, "0")}.example`);
  const big = await mintServerCertificate({ days: 1, hostnames });
  assert.ok(big.certDer.length + 64 + 79 > 3561, `certificate of ${big.certDer.length} bytes fits`);
  await assert.rejects(importUdpSigningKey(big.certPem, big.keyPem), TypeError);
  const fits = await mintServerCertificate({ days: 1, hostnames: hostnames.slice(0, 100) });
  assert.ok(fits.certDer.length + 64 + 79 <= 3561);
  assert.equal((await importUdpSigningKey(fits.certPem, fits.keyPem)).algorithm, "ecdsa-p256-sha256");
});
