/**
 * Both ends of a real UDP session handshake, for tests of what runs over its RECORDs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import { ClientHandshake } from "../../lib/crypto/udp_client_handshake.ts";
import { importUdpSigningKey } from "../../lib/crypto/udp_server_signature.ts";
import { ServerHandshake } from "../../lib/crypto/udp_server_handshake.ts";
import type { EstablishedSession } from "../../lib/crypto/udp_session_keys.ts";

/** The two established sessions of one handshake and the client's FINISH datagram. */
export interface SessionPair {
  client: EstablishedSession;
  server: EstablishedSession;
  finish: Uint8Array<ArrayBuffer>;
}

let signingKey: Promise<Awaited<ReturnType<typeof importUdpSigningKey>>> | undefined;

/** Run a whole handshake (the server's key is made once per test process). */
export async function establishedPair(): Promise<SessionPair> {
  signingKey ??= mintServerCertificate({ days: 1 }).then((cert) =>
    importUdpSigningKey(cert.certPem, cert.keyPem)
  );
  const key = await signingKey;
  const client = await ClientHandshake.start();
  const responded = await ServerHandshake.respond(client.init, key);
  assert.ok(responded.ok);
  let accepted;
  for (const d of responded.handshake.acceptDatagrams) accepted = await client.receiveAccept(d);
  assert.ok(accepted?.kind === "accepted");
  const finished = responded.handshake.receiveFinish(accepted.finish);
  assert.ok(finished.ok);
  return { client: accepted.session, server: finished.session, finish: accepted.finish };
}
