import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign, verify } from "node:crypto";
import { Buffer } from "node:buffer";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import {
  CREDENTIAL_CONTEXT,
  CREDENTIAL_HEAD_BYTES,
  CREDENTIAL_LIFETIME_S,
  CREDENTIAL_RENEW_S,
  CREDENTIAL_SKEW_S,
  delegatedAcceptFits,
  DelegatedSigner,
  MAX_CREDENTIAL_S,
  verifyAcceptSignature,
} from "../../lib/crypto/udp_delegated_credential.ts";
import { importUdpSigningKey, signedMessage, signTranscript } from "../../lib/crypto/udp_server_signature.ts";
import { encodeAccept, MAX_ACCEPT_BODY } from "../../lib/codec/udp_session_datagram.ts";

const ec = await mintServerCertificate({ days: 1 });
const other = await mintServerCertificate({ days: 1 });
const rsa = await mintServerCertificate({ days: 1, rsa: true });
const TH = new Uint8Array(32).map((_, i) => i);
const NOW = Date.UTC(2026, 11, 7);

async function signer(cert = ec): Promise<DelegatedSigner> {
  return new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
}

/** What a client gets from a server with this signer, at NOW. */
async function accept(s: DelegatedSigner, transcriptHash = TH) {
  const delegation = await s.current(NOW);
  return {
    delegation,
    input: {
      certificate: s.key.certificate,
      algorithm: "ed25519-delegated" as const,
      credential: delegation.credential,
      signature: s.sign(delegation, transcriptHash),
      transcriptHash,
      now: NOW,
    },
  };
}

Deno.test("A credential is valid_until, the raw Ed25519 key and the certificate key's signature over them", async () => {
  for (const cert of [ec, rsa]) {
    const s = await signer(cert);
    const { delegation, input } = await accept(s);
    const credential = delegation.credential;
    const view = new DataView(credential.buffer, credential.byteOffset);
    assert.equal(view.getUint32(0), Math.floor(NOW / 1000) + CREDENTIAL_LIFETIME_S);
    assert.equal(delegation.validUntil, view.getUint32(0));
    // Checked here by hand, independently of the code under test: the certificate key's signature...
    const x509 = await import("@peculiar/x509");
    const spki = new Uint8Array(new x509.X509Certificate(cert.certDer).publicKey.rawData);
    const params = cert === ec
      ? [{ name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }] as const
      : [{ name: "RSA-PSS", hash: "SHA-256" }, { name: "RSA-PSS", saltLength: 32 }] as const;
    const certKey = await crypto.subtle.importKey("spki", spki, params[0], false, ["verify"]);
    const message = new Uint8Array([
      ...new TextEncoder().encode(CREDENTIAL_CONTEXT),
      0,
      ...createHash("sha256").update(cert.certDer).digest(),
      ...credential.subarray(0, CREDENTIAL_HEAD_BYTES),
    ]);
    assert.ok(
      await crypto.subtle.verify(params[1], certKey, credential.subarray(CREDENTIAL_HEAD_BYTES), message),
    );
    // ...and the delegated key's over the transcript, with the public key the credential carries.
    const raw = credential.subarray(4, CREDENTIAL_HEAD_BYTES);
    const jwk = { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") };
    const ed = await crypto.subtle.importKey("jwk", jwk, "Ed25519", false, ["verify"]);
    assert.ok(await crypto.subtle.verify("Ed25519", ed, input.signature, signedMessage(TH)));
    assert.equal(await verifyAcceptSignature(input), null);
  }
});

Deno.test("verifyAcceptSignature refuses a delegated signature that another key made or another transcript", async () => {
  const { input } = await accept(await signer());
  const otherTh = TH.slice();
  otherTh[0]! ^= 1;
  assert.equal(await verifyAcceptSignature({ ...input, transcriptHash: otherTh }), "bad-signature");
  // A valid credential, but the transcript signed by a key it does not vouch for.
  const stranger = generateKeyPairSync("ed25519");
  const forged = new Uint8Array(sign(null, signedMessage(TH), stranger.privateKey));
  assert.equal(await verifyAcceptSignature({ ...input, signature: forged }), "bad-signature");
  assert.equal(
    await verifyAcceptSignature({ ...input, signature: input.signature.subarray(1).slice() }),
    "bad-signature",
  );
});

Deno.test("verifyAcceptSignature refuses a credential not made by this certificate's key for this certificate", async () => {
  const { input } = await accept(await signer());
  // Another server's valid credential and signature, under this server's certificate.
  const { input: theirs } = await accept(await signer(other));
  assert.equal(await verifyAcceptSignature({ ...theirs, certificate: ec.certDer }), "bad-credential");
  // The attacker's own Ed25519 key put in the credential, the certificate key's signature kept.
  const attacker = generateKeyPairSync("ed25519");
  const spki = attacker.publicKey.export({ type: "spki", format: "der" });
  const swapped = input.credential.slice();
  swapped.set(spki.subarray(spki.length - 32), 4);
  const signature = new Uint8Array(sign(null, signedMessage(TH), attacker.privateKey));
  assert.ok(verify(null, signedMessage(TH), attacker.publicKey, signature));
  assert.equal(
    await verifyAcceptSignature({ ...input, credential: swapped, signature }),
    "bad-credential",
  );
  // valid_until moved (still within the week ahead): the certificate key did not sign that.
  const later = input.credential.slice();
  new DataView(later.buffer).setUint32(0, new DataView(later.buffer).getUint32(0) + 3600);
  assert.equal(await verifyAcceptSignature({ ...input, credential: later }), "bad-credential");
  // The certificate key's signature damaged; truncated; missing; given with a direct algorithm.
  const damaged = input.credential.slice();
  damaged[damaged.length - 1]! ^= 1;
  assert.equal(await verifyAcceptSignature({ ...input, credential: damaged }), "bad-credential");
  assert.equal(
    await verifyAcceptSignature({
      ...input,
      credential: input.credential.subarray(0, CREDENTIAL_HEAD_BYTES),
    }),
    "bad-credential",
  );
  const { credential: _, ...bare } = input;
  assert.equal(await verifyAcceptSignature(bare), "bad-credential");
  const key = await importUdpSigningKey(ec.certPem, ec.keyPem);
  const direct = { ...input, algorithm: key.algorithm, signature: await signTranscript(key, TH) };
  assert.equal(await verifyAcceptSignature(direct), "bad-credential");
  const { credential: __, ...plain } = direct;
  assert.equal(await verifyAcceptSignature(plain), null);
  // The genuine one still verifies after all that (a refused credential is not remembered as checked).
  assert.equal(await verifyAcceptSignature(input), null);
});

Deno.test("verifyAcceptSignature refuses a credential past its time or valid further than a week ahead", async () => {
  const { input, delegation } = await accept(await signer());
  const at = (seconds: number) => ({ ...input, now: seconds * 1000 });
  assert.equal(await verifyAcceptSignature(at(delegation.validUntil)), null);
  assert.equal(await verifyAcceptSignature(at(delegation.validUntil + CREDENTIAL_SKEW_S)), null);
  assert.equal(
    await verifyAcceptSignature(at(delegation.validUntil + CREDENTIAL_SKEW_S + 1)),
    "expired-credential",
  );
  assert.equal(await verifyAcceptSignature(at(delegation.validUntil - MAX_CREDENTIAL_S)), null);
  assert.equal(
    await verifyAcceptSignature(at(delegation.validUntil - MAX_CREDENTIAL_S - 1)),
    "expired-credential",
  );
});

Deno.test("DelegatedSigner keeps its credential until two days are left, then makes another, once", async () => {
  const s = await signer();
  const first = await s.current(NOW);
  assert.equal(await s.current(NOW + 1000), first);
  const renewAt = (first.validUntil - CREDENTIAL_RENEW_S) * 1000;
  assert.equal(await s.current(renewAt - 1000), first);
  const [a, b] = await Promise.all([s.current(renewAt + 1000), s.current(renewAt + 2000)]);
  assert.notEqual(a, first);
  assert.equal(a, b, "handshakes asking together share one new credential");
  assert.notEqual(a.credential.subarray(4, 36).toHex(), first.credential.subarray(4, 36).toHex());
  assert.equal(a.validUntil, Math.floor((renewAt + 1000) / 1000) + CREDENTIAL_LIFETIME_S);
});

Deno.test("DelegatedSigner makes a new credential when its clock went back since the last (more left than a lifetime)", async () => {
  const s = await signer();
  const ahead = await s.current(NOW + 10 * 86_400_000);
  const now = await s.current(NOW);
  assert.notEqual(now, ahead);
  assert.equal(now.validUntil, Math.floor(NOW / 1000) + CREDENTIAL_LIFETIME_S);
  const { input } = await accept(s);
  assert.equal(await verifyAcceptSignature(input), null);
});

Deno.test("A client's clock may be three days fast or four slow before it refuses a server's credential", async () => {
  const s = await signer();
  const { input, delegation } = await accept(s);
  const day = 86_400_000;
  // Just before its renewal (two days left), to a fast client; just made, to a slow one.
  const lastServed = (delegation.validUntil - CREDENTIAL_RENEW_S) * 1000;
  assert.equal(await verifyAcceptSignature({ ...input, now: lastServed + 3 * day }), null);
  assert.equal(
    await verifyAcceptSignature({ ...input, now: lastServed + 3 * day + 1000 }),
    "expired-credential",
  );
  assert.equal(await verifyAcceptSignature({ ...input, now: NOW - 4 * day }), null);
  assert.equal(await verifyAcceptSignature({ ...input, now: NOW - 4 * day - 1000 }), "expired-credential");
});

Deno.test("delegatedAcceptFits: a certificate within 102 bytes of the bound loads, but signs directly", async () => {
  const names = Array.from({ length: 400 }, (_, i) => `h${100 + i}.example.org`);
  const probe = await mintServerCertificate({ days: 1, rsa: true, hostnames: names.slice(0, 100) });
  // Each name adds about 18 bytes: start a little before the window (direct fits, delegated does not).
  const start = 100 + Math.floor((MAX_ACCEPT_BODY - 77 - 384 - 60 - probe.certDer.length) / 18);
  let seen = 0;
  for (let n = start - 2; n < names.length && seen < 2; n++) {
    const cert = await mintServerCertificate({ days: 1, rsa: true, hostnames: names.slice(0, n) });
    const direct = 32 + 32 + 8 + 1 + 2 + cert.certDer.length + 2 + 384;
    if (direct > MAX_ACCEPT_BODY) break;
    const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
    const fits = await delegatedAcceptFits(key);
    // The arithmetic agrees with the encoder: the delegated ACCEPT encodes exactly when it fits.
    const delegation = await new DelegatedSigner(key).current(NOW);
    const body = {
      serverRandom: new Uint8Array(32),
      serverShare: new Uint8Array(32),
      connectionId: new Uint8Array(8),
      algorithm: "ed25519-delegated" as const,
      certificate: key.certificate,
      credential: delegation.credential,
      signature: new Uint8Array(64),
    };
    if (fits) assert.ok(encodeAccept(body).length <= 3);
    else assert.throws(() => encodeAccept(body), RangeError);
    if (!fits) seen++;
  }
  assert.ok(seen > 0, "no certificate size in the window was found");
  assert.ok(await delegatedAcceptFits(await importUdpSigningKey(rsa.certPem, rsa.keyPem)));
  assert.ok(await delegatedAcceptFits(await importUdpSigningKey(ec.certPem, ec.keyPem)));
});
