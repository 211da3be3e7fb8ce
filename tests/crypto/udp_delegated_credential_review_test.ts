// Second-reader tests for 3f105a5 (delegated credentials of UDP handshakes, PROTOCOL 20.5).
import assert from "node:assert/strict";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import {
  CREDENTIAL_LIFETIME_S,
  DelegatedSigner,
  MAX_CREDENTIAL_S,
  verifyAcceptSignature,
} from "../../lib/crypto/udp_delegated_credential.ts";
import { importUdpSigningKey } from "../../lib/crypto/udp_server_signature.ts";
import { acceptSignedBytes, MAX_ACCEPT_BODY } from "../../lib/codec/udp_session_datagram.ts";

const NOW = Date.UTC(2026, 11, 7);
const DAY_MS = 86_400_000;
const TH = new Uint8Array(32).map((_, i) => i);

// FINDING 1 (fails): a server whose clock is stepped back (started while fast by more than
// MAX_CREDENTIAL_S - CREDENTIAL_LIFETIME_S = 5 days, then corrected by NTP) keeps serving a credential that
// every correct client refuses as "expired-credential", until the stale valid_until is within a day: the
// renewal test only looks at "too little left", never at "more left than a credential can have".
Deno.test("REVIEW: DelegatedSigner renews a credential its own clock says is valid longer than its lifetime", async () => {
  const cert = await mintServerCertificate({ days: 30 });
  const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
  await signer.current(NOW + 10 * DAY_MS); // made at start, clock 10 days fast
  const delegation = await signer.current(NOW); // the clock is corrected; a handshake comes
  const refusal = await verifyAcceptSignature({
    certificate: signer.key.certificate,
    algorithm: "ed25519-delegated",
    credential: delegation.credential,
    signature: signer.sign(delegation, TH),
    transcriptHash: TH,
    now: NOW, // a client with the right time
  });
  assert.ok(delegation.validUntil - NOW / 1000 <= CREDENTIAL_LIFETIME_S, "stale credential still served");
  assert.equal(refusal, null);
});

// FINDING 2 (fails): a certificate that made an ACCEPT within 3561 bytes before 3f105a5 (direct signature)
// is now refused at load, so a server that started before the upgrade no longer starts: the delegated
// ACCEPT is 102 bytes longer (cred_len 2 + valid_until 4 + key 32 + Ed25519 sig 64) than the direct one.
Deno.test("REVIEW: a certificate whose direct ACCEPT fits still loads (no fallback from the delegated form)", async () => {
  const names = Array.from({ length: 400 }, (_, i) => `h${100 + i}.example.org`);
  // Find a certificate in the 102-byte window: direct ACCEPT fits, delegated one does not.
  const probe = await mintServerCertificate({ days: 1, rsa: true, hostnames: names.slice(0, 100) });
  const start = 100 + Math.floor((MAX_ACCEPT_BODY - 77 - 384 - 60 - probe.certDer.length) / 18);
  for (let n = start - 2; n < names.length; n += 1) {
    const cert = await mintServerCertificate({ days: 1, rsa: true, hostnames: names.slice(0, n) });
    const direct = 32 + 32 + 8 + 1 + 2 + cert.certDer.length + 2 + 384;
    if (direct > MAX_ACCEPT_BODY) break;
    if (direct + 102 <= MAX_ACCEPT_BODY) continue;
    // Before 3f105a5 this loaded and every handshake was answered.
    await importUdpSigningKey(cert.certPem, cert.keyPem);
    return;
  }
  throw new Error("no certificate size in the window was found");
});

// Answers the brief's RSA question (passes): the load-time bound is exact, so a certificate that loads
// always yields an ACCEPT within the bound (no per-handshake failure).
Deno.test("REVIEW: importUdpSigningKey's bound equals the delegated ACCEPT body's real size", async () => {
  for (const rsa of [false, true]) {
    const cert = await mintServerCertificate({ days: 1, rsa });
    const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
    const d = await signer.current(Date.now());
    const body = acceptSignedBytes({
      serverRandom: new Uint8Array(32),
      serverShare: new Uint8Array(32),
      connectionId: new Uint8Array(8),
      algorithm: "ed25519-delegated",
      certificate: signer.key.certificate,
      credential: d.credential,
    }).length + 2 + 64;
    const sigLen = rsa ? 384 : 64;
    const bound = 32 + 32 + 8 + 1 + 2 + 2 + cert.certDer.length + Math.max(sigLen, 2 + 4 + 32 + sigLen + 64);
    assert.equal(body, bound);
  }
});

// Theoretical, documented (passes): a client with a pinned certificate and a clock more than a day fast
// now refuses a just-renewed credential; before 3f105a5 a pinned UDP session had no clock dependency.
Deno.test("REVIEW: a client whose clock is 1 day + 1 s fast refuses a just-renewed credential", async () => {
  const cert = await mintServerCertificate({ days: 30 });
  const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
  const d = await signer.current(NOW);
  const input = {
    certificate: signer.key.certificate,
    algorithm: "ed25519-delegated" as const,
    credential: d.credential,
    signature: signer.sign(d, TH),
    transcriptHash: TH,
  };
  // Served until a day is left; a client 1 day + 1 s fast refuses it at that point.
  const servedUntil = (d.validUntil - 24 * 3600) * 1000;
  assert.equal(await verifyAcceptSignature({ ...input, now: servedUntil + DAY_MS + 1000 }), "expired-credential");
  assert.equal(MAX_CREDENTIAL_S - CREDENTIAL_LIFETIME_S, 5 * 86400); // slow clocks: 5 days of slack
});
