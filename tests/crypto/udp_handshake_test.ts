import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import {
  acceptSignedBytes,
  decodeAcceptBody,
  decodeAcceptFragment,
  encodeAccept,
  encodeFinish,
  initTranscriptBytes,
} from "../../lib/codec/udp_session_datagram.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { ScramServer } from "../../lib/auth/scram_server.ts";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { generateEphemeral } from "../../lib/crypto/peer_session.ts";
import { createVerifier } from "../../lib/crypto/scram_verifier.ts";
import { type AcceptResult, ClientHandshake } from "../../lib/crypto/udp_client_handshake.ts";
import { deriveHandshakeSecrets, transcriptHash } from "../../lib/crypto/udp_key_schedule.ts";
import { RecordProtection } from "../../lib/crypto/udp_record_protection.ts";
import { DelegatedSigner } from "../../lib/crypto/udp_delegated_credential.ts";
import { ServerHandshake } from "../../lib/crypto/udp_server_handshake.ts";
import {
  importUdpSigningKey,
  signTranscript,
  type UdpSigningKey,
} from "../../lib/crypto/udp_server_signature.ts";
import type { EstablishedSession } from "../../lib/crypto/udp_session_keys.ts";

const utf8 = new TextEncoder();
const ecCert = await mintServerCertificate({ days: 1 });
const rsaCert = await mintServerCertificate({ days: 1, rsa: true });
const EC_KEY = await importUdpSigningKey(ecCert.certPem, ecCert.keyPem);
const RSA_KEY = await importUdpSigningKey(rsaCert.certPem, rsaCert.keyPem);
const otherCert = await mintServerCertificate({ days: 1 });
const OTHER_KEY = await importUdpSigningKey(otherCert.certPem, otherCert.keyPem);

async function respond(
  client: ClientHandshake,
  key: UdpSigningKey | DelegatedSigner = EC_KEY,
): Promise<ServerHandshake> {
  const r = await ServerHandshake.respond(client.init, key);
  assert.ok(r.ok);
  return r.handshake;
}

async function feed(client: ClientHandshake, datagrams: Uint8Array[]): Promise<AcceptResult> {
  let last: AcceptResult | undefined;
  for (const d of datagrams) last = await client.receiveAccept(d);
  assert.ok(last);
  return last;
}

type Accepted = Extract<AcceptResult, { kind: "accepted" }>;

function accepted(r: AcceptResult): Accepted {
  assert.equal(r.kind === "dropped" ? r.reason : r.kind, "accepted");
  return r as Accepted;
}

/** A whole handshake; returns both sides' sessions. */
async function handshake(
  key: UdpSigningKey = EC_KEY,
): Promise<{ client: EstablishedSession; server: EstablishedSession; accept: Accepted }> {
  const client = await ClientHandshake.start();
  const server = await respond(client, key);
  const accept = accepted(await feed(client, server.acceptDatagrams));
  const finished = server.receiveFinish(accept.finish);
  assert.ok(finished.ok);
  return { client: accept.session, server: finished.session, accept };
}

function roundTrip(client: EstablishedSession, server: EstablishedSession): void {
  const up = server.records.open(client.records.seal(utf8.encode("ping")));
  assert.ok(up.ok && new TextDecoder().decode(up.payload) === "ping");
  const down = client.records.open(server.records.seal(utf8.encode("pong")));
  assert.ok(down.ok && new TextDecoder().decode(down.payload) === "pong");
}

const cases: [string, UdpSigningKey | DelegatedSigner, typeof ecCert, number][] = [
  ["ECDSA P-256", EC_KEY, ecCert, 1],
  ["RSA-3072", RSA_KEY, rsaCert, 2],
  ["Ed25519 delegated by an ECDSA P-256", new DelegatedSigner(EC_KEY), ecCert, 1],
  ["Ed25519 delegated by an RSA-3072", new DelegatedSigner(RSA_KEY), rsaCert, 2],
];
for (const [name, key, cert, fragments] of cases) {
  Deno.test(`ServerHandshake and ClientHandshake agree on keys with an ${name} certificate`, async () => {
    const client = await ClientHandshake.start();
    const server = await respond(client, key);
    const datagrams = server.acceptDatagrams;
    assert.equal(datagrams.length, fragments);
    assert.ok(datagrams.every((d) => d.length <= 1200));
    assert.ok(datagrams.reduce((n, d) => n + d.length, 0) <= 3 * 1200);
    const accept = accepted(await feed(client, datagrams));
    // The same certificate and fingerprint as TLS serves, so the same pins apply.
    assert.equal(accept.server.fingerprint, await fingerprint(cert.certDer));
    assert.equal(accept.server.certificate.toHex(), cert.certDer.toHex());
    assert.equal(accept.session.connectionId.toHex(), server.connectionId.toHex());
    assert.equal(server.finished, false);
    const finished = server.receiveFinish(accept.finish);
    assert.ok(finished.ok);
    assert.equal(server.finished, true);
    roundTrip(accept.session, finished.session);
    assert.equal(accept.session.channelBindingType, "authchat-udp-exporter");
    assert.equal(accept.session.channelBinding.toHex(), finished.session.channelBinding.toHex());
  });
}

Deno.test("ClientHandshake reassembles ACCEPT fragments in any order and with duplicates", async () => {
  const client = await ClientHandshake.start();
  const server = await respond(client, RSA_KEY);
  const [a, b] = server.acceptDatagrams;
  assert.equal((await client.receiveAccept(b!)).kind, "pending");
  assert.equal((await client.receiveAccept(b!)).kind, "pending");
  accepted(await client.receiveAccept(a!));
  const again = await client.receiveAccept(a!);
  assert.deepEqual(again, { kind: "dropped", reason: "already-accepted" });
});

Deno.test("ClientHandshake refuses every single-byte change of an ACCEPT, then takes the genuine one", async () => {
  const client = await ClientHandshake.start();
  const server = await respond(client);
  const [genuine] = server.acceptDatagrams;
  const reasons = new Set<string>();
  for (let i = 0; i < genuine!.length; i++) {
    const bad = genuine!.slice();
    // 0x03 turns signature algorithm 0x01 into 0x02, a known algorithm that is not the key's.
    bad[i]! ^= 0x03;
    const r = await client.receiveAccept(bad);
    // Only a changed fragment count (byte 12) leaves the client waiting for fragments that never come.
    assert.equal(r.kind, i === 12 ? "pending" : "dropped", `byte ${i}`);
    if (r.kind === "dropped") reasons.add(r.reason);
  }
  for (const reason of reasons) {
    assert.ok(
      ["malformed", "bad-certificate", "algorithm-mismatch", "bad-signature"].includes(reason),
      reason,
    );
  }
  assert.ok(reasons.has("bad-signature") && reasons.has("algorithm-mismatch"));
  accepted(await client.receiveAccept(genuine!));
});

Deno.test("ClientHandshake refuses every single-byte change of a delegated ACCEPT, then takes the genuine one", async () => {
  const client = await ClientHandshake.start();
  const server = await respond(client, new DelegatedSigner(EC_KEY));
  const [genuine] = server.acceptDatagrams;
  const reasons = new Set<string>();
  for (let i = 0; i < genuine!.length; i++) {
    const bad = genuine!.slice();
    // The fragment count (byte 12) becomes 0: malformed too.
    bad[i]! ^= 0x01;
    const r = await client.receiveAccept(bad);
    assert.equal(r.kind, "dropped", `byte ${i}`);
    if (r.kind === "dropped") reasons.add(r.reason);
  }
  for (const reason of reasons) {
    assert.ok(
      [
        "malformed",
        "bad-certificate",
        "algorithm-mismatch",
        "bad-signature",
        "bad-credential",
        "expired-credential",
      ]
        .includes(reason),
      reason,
    );
  }
  assert.ok(reasons.has("bad-signature") && reasons.has("bad-credential") && reasons.has("bad-certificate"));
  accepted(await client.receiveAccept(genuine!));
});

Deno.test("ClientHandshake refuses an ACCEPT made for another client's INIT (a replayed ACCEPT)", async () => {
  const alice = await ClientHandshake.start();
  const forAlice = await respond(alice);
  const mallory = await ClientHandshake.start();
  assert.deepEqual(await feed(mallory, forAlice.acceptDatagrams), {
    kind: "dropped",
    reason: "bad-signature",
  });
});

Deno.test("ClientHandshake refuses the server's certificate signed for by another key", async () => {
  const client = await ClientHandshake.start();
  // An impostor with its own key presents the real certificate.
  const impostor = await respond(client, { ...OTHER_KEY, certificate: EC_KEY.certificate });
  assert.deepEqual(await feed(client, impostor.acceptDatagrams), {
    kind: "dropped",
    reason: "bad-signature",
  });
  // With its own certificate the signature holds, but the fingerprint is not the pinned one.
  const own = accepted(await feed(client, (await respond(client, OTHER_KEY)).acceptDatagrams));
  assert.notEqual(own.server.fingerprint, await fingerprint(ecCert.certDer));
  assert.equal(own.server.fingerprint, await fingerprint(otherCert.certDer));
});

Deno.test("ClientHandshake refuses a low-order server share even when the signature is genuine", async () => {
  const client = await ClientHandshake.start();
  const init = client.init;
  const signedPart = {
    serverRandom: new Uint8Array(32),
    serverShare: new Uint8Array(32),
    connectionId: new Uint8Array(8),
    algorithm: EC_KEY.algorithm,
    certificate: EC_KEY.certificate,
  };
  const th = transcriptHash(
    initTranscriptBytes(1, init.clientRandom, init.clientShare),
    acceptSignedBytes(signedPart),
  );
  const datagrams = encodeAccept({ ...signedPart, signature: await signTranscript(EC_KEY, th) });
  assert.deepEqual(await feed(client, datagrams), { kind: "dropped", reason: "bad-share" });
});

Deno.test("ServerHandshake refuses an INIT with a low-order share, wrong sizes or version", async () => {
  const client = await ClientHandshake.start();
  const init = client.init;
  for (
    const bad of [
      { ...init, clientShare: new Uint8Array(32) },
      { ...init, clientShare: new Uint8Array(31) },
      { ...init, clientRandom: new Uint8Array(33) },
      { ...init, version: 2 },
    ]
  ) {
    assert.deepEqual(await ServerHandshake.respond(bad, EC_KEY), { ok: false, reason: "bad-init" });
  }
});

Deno.test("ServerHandshake drops a malformed, misdirected, forged or repeated FINISH", async () => {
  const client = await ClientHandshake.start();
  const server = await respond(client);
  const { finish } = accepted(await feed(client, server.acceptDatagrams));
  assert.deepEqual(server.receiveFinish(finish.subarray(0, 42)), { ok: false, reason: "malformed" });
  assert.deepEqual(server.receiveFinish(new Uint8Array(0)), { ok: false, reason: "malformed" });
  const decoded = { cid: finish.slice(3, 11), mac: finish.slice(11) };
  const otherCid = decoded.cid.slice();
  otherCid[0]! ^= 1;
  assert.deepEqual(server.receiveFinish(encodeFinish(otherCid, decoded.mac)), {
    ok: false,
    reason: "wrong-connection",
  });
  const forged = decoded.mac.slice();
  forged[31]! ^= 1;
  assert.deepEqual(server.receiveFinish(encodeFinish(decoded.cid, forged)), {
    ok: false,
    reason: "bad-finish",
  });
  // A FINISH from another handshake with this server (same cid forced) does not verify either.
  const other = await ClientHandshake.start();
  const otherServer = await respond(other);
  const otherFinish = accepted(await feed(other, otherServer.acceptDatagrams)).finish;
  assert.deepEqual(server.receiveFinish(encodeFinish(decoded.cid, otherFinish.slice(11))), {
    ok: false,
    reason: "bad-finish",
  });
  assert.equal(server.finished, false);
  assert.ok(server.receiveFinish(finish).ok);
  assert.deepEqual(server.receiveFinish(finish), { ok: false, reason: "duplicate" });
});

Deno.test("ClientHandshake completes the genuine ACCEPT while forged fragment groups come and go", async () => {
  const client = await ClientHandshake.start();
  const server = await respond(client, RSA_KEY);
  const [a, b] = server.acceptDatagrams;
  for (let i = 0; i < 6; i++) {
    const fake = a!.slice();
    fake[3] = i + 100; // Another connection id: another group.
    assert.equal((await client.receiveAccept(fake)).kind, "pending");
  }
  assert.equal((await client.receiveAccept(a!)).kind, "pending");
  accepted(await client.receiveAccept(b!));
});

Deno.test("UDP session keys are forward secret: the server's long-term key and the transcript open nothing", async () => {
  // Everything on the wire is recorded.
  const client = await ClientHandshake.start();
  const init = client.init;
  const server = await respond(client);
  const wire = server.acceptDatagrams;
  const accept = accepted(await feed(client, wire));
  const finished = server.receiveFinish(accept.finish);
  assert.ok(finished.ok);
  const recorded = [accept.session.records.seal(utf8.encode("secret one"))];
  recorded.push(finished.session.records.seal(utf8.encode("secret two")));
  // Later the attacker steals the server's signing key. It can recompute the transcript hash from the
  // recorded bytes and sign anything, but the X25519 secret needs an ephemeral private key that was never
  // extractable and is gone with the handshake; its own ephemeral gives other keys.
  const body = decodeAcceptBody(decodeAcceptFragment(wire[0]!).chunk);
  const th = transcriptHash(initTranscriptBytes(1, init.clientRandom, init.clientShare), body.signedBytes);
  assert.ok((await signTranscript(EC_KEY, th)).length > 0);
  const attacker = await generateEphemeral();
  assert.equal(attacker.privateKey.extractable, false);
  const guesses = [
    new Uint8Array(
      await crypto.subtle.deriveBits(
        {
          name: "X25519",
          public: await crypto.subtle.importKey("raw", init.clientShare, "X25519", false, []),
        },
        attacker.privateKey,
        256,
      ),
    ),
    // Neither the transcript hash nor public shares stand in for the shared secret.
    th,
    body.serverShare,
  ];
  for (const guess of guesses) {
    const secrets = deriveHandshakeSecrets(guess, th);
    const asServer = new RecordProtection({ connectionId: body.connectionId, ...secrets }, "server");
    const asClient = new RecordProtection({ connectionId: body.connectionId, ...secrets }, "client");
    assert.deepEqual(asServer.open(recorded[0]!), { ok: false, reason: "forged" });
    assert.deepEqual(asClient.open(recorded[1]!), { ok: false, reason: "forged" });
    assert.notEqual(secrets.channelBinding.toHex(), accept.session.channelBinding.toHex());
  }
});

Deno.test("Two UDP handshakes give different channel bindings, session keys and connection ids", async () => {
  const one = await handshake();
  const two = await handshake();
  assert.notEqual(one.client.channelBinding.toHex(), two.client.channelBinding.toHex());
  assert.notEqual(one.client.connectionId.toHex(), two.client.connectionId.toHex());
  // A record of one session is refused by the other.
  const r = two.server.records.open(one.client.records.seal(utf8.encode("x")));
  assert.ok(!r.ok && r.reason === "wrong-connection");
});

const verifier = await createVerifier("pencil", { iterations: 4096 });

async function scramLogin(clientBinding: Uint8Array<ArrayBuffer>, serverBinding: Uint8Array<ArrayBuffer>) {
  const server = new ScramServer({ channelBinding: serverBinding });
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    channelBinding: clientBinding,
  });
  // Whoever is in the middle passes the four messages on unchanged.
  const exchange = server.begin(server.parseFirst(client.mechanism, client.first), verifier);
  const serverFinal = await exchange.finish(await client.final(exchange.serverFirst));
  client.verify(serverFinal);
}

Deno.test("SCRAM-SHA-256-PLUS bound to a UDP handshake logs in over that handshake", async () => {
  const { client, server } = await handshake();
  await scramLogin(client.channelBinding, server.channelBinding);
});

Deno.test("SCRAM-SHA-256-PLUS relayed between two UDP handshakes by a man in the middle fails", async () => {
  // The victim's handshake ends at the attacker (which it trusted, e.g. on first use); the attacker runs a
  // second handshake with the real server and relays the SCRAM messages between the two.
  const victimToAttacker = await handshake(OTHER_KEY);
  const attackerToServer = await handshake(EC_KEY);
  await assert.rejects(
    scramLogin(victimToAttacker.client.channelBinding, attackerToServer.server.channelBinding),
    (err: unknown) =>
      err instanceof ProtocolError && err.code === "CHANNEL_BINDING" &&
      err.details.scram === "channel-bindings-dont-match",
  );
});
