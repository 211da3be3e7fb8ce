import assert from "node:assert/strict";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { SCRAM_SHA_256, ScramServer } from "../../lib/auth/scram_server.ts";
import type { ScramServerOptions } from "../../lib/auth/scram_server.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { deriveKeys, saltedPassword, scramSessionKey } from "../../lib/crypto/scram_math.ts";
import { createVerifier } from "../../lib/crypto/scram_verifier.ts";
import type { ScramVerifier } from "../../lib/crypto/scram_verifier.ts";
import { RFC7677 } from "./_rfc_vectors.ts";

const verifierFor = (password: string) => createVerifier(password, { iterations: 4096 });

/** Run a whole exchange; return both ends. */
async function exchange(
  options: ScramServerOptions & { clientCb?: Uint8Array<ArrayBuffer>; password?: string },
  verifier: ScramVerifier,
) {
  const server = new ScramServer(options);
  const client = new ScramClient({
    username: "alice",
    password: options.password ?? "pencil",
    serverMechanisms: server.mechanisms,
    ...(options.clientCb ? { channelBinding: options.clientCb } : {}),
  });
  const ex = server.begin(server.parseFirst(client.mechanism, client.first), verifier);
  const serverFinal = await ex.finish(await client.final(ex.serverFirst));
  client.verify(serverFinal);
  return { client, exchange: ex };
}

Deno.test("ScramClient.sessionKey equals ScramServerExchange.sessionKey after a successful exchange", async () => {
  const verifier = await verifierFor("pencil");
  const a = await exchange({}, verifier);
  assert.ok(a.client.sessionKey && a.exchange.sessionKey);
  assert.equal(a.client.sessionKey.length, 32);
  assert.deepEqual(a.client.sessionKey, a.exchange.sessionKey);
  const b = await exchange({}, verifier);
  assert.deepEqual(b.client.sessionKey, b.exchange.sessionKey);
  assert.notDeepEqual(b.client.sessionKey, a.client.sessionKey, "each exchange has its own key");
});

Deno.test("ScramClient.sessionKey equals the server's on a channel-bound (PLUS) exchange", async () => {
  const cb = crypto.getRandomValues(new Uint8Array(32));
  const plus = await exchange({ channelBinding: cb, clientCb: cb.slice() }, await verifierFor("pencil"));
  assert.equal(plus.client.mechanism, "SCRAM-SHA-256-PLUS");
  assert.ok(plus.client.sessionKey);
  assert.deepEqual(plus.client.sessionKey, plus.exchange.sessionKey);
});

Deno.test("ScramServerExchange.sessionKey is scramSessionKey of ClientKey and the AuthMessage (RFC 7677)", async () => {
  const v = RFC7677;
  const salt = Uint8Array.fromBase64(v.salt);
  const keys = await deriveKeys(
    await saltedPassword(v.password, { salt, iterations: v.iterations, hash: v.hash }),
    v.hash,
  );
  const server = new ScramServer({ serverNonce: v.serverNonce });
  const ex = server.begin(server.parseFirst(SCRAM_SHA_256, v.clientFirst), {
    iterations: v.iterations,
    salt,
    storedKey: keys.storedKey,
    serverKey: keys.serverKey,
  });
  assert.equal(await ex.finish(v.clientFinal), v.serverFinal);
  const authMessage = `${v.clientFirst.slice(3)},${v.serverFirst},${v.clientFinal.replace(/,p=.*$/, "")}`;
  assert.deepEqual(ex.sessionKey, await scramSessionKey(keys.clientKey, authMessage));
  const client = new ScramClient({
    username: v.username,
    password: v.password,
    serverMechanisms: [SCRAM_SHA_256],
    nonce: v.clientNonce,
  });
  assert.equal(await client.final(v.serverFirst), v.clientFinal);
  client.verify(v.serverFinal);
  assert.deepEqual(client.sessionKey, ex.sessionKey);
});

Deno.test("ScramClient.sessionKey is null before verify and after a refused server signature", async () => {
  const server = new ScramServer();
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
  });
  assert.equal(client.sessionKey, null);
  const ex = server.begin(server.parseFirst(client.mechanism, client.first), await verifierFor("pencil"));
  const clientFinal = await client.final(ex.serverFirst);
  assert.equal(client.sessionKey, null, "not before the server proved itself");
  assert.ok(await ex.finish(clientFinal));
  assert.throws(() => client.verify("v=" + btoa("x".repeat(32))), ProtocolError);
  assert.equal(client.sessionKey, null, "not from an impostor server");
  assert.throws(() => client.verify("e=invalid-proof"), ProtocolError);
  assert.equal(client.sessionKey, null);
});

Deno.test("ScramServerExchange.sessionKey is null before finish and after a wrong proof or a mock exchange", async () => {
  const verifier = await verifierFor("pencil");
  const server = new ScramServer();
  const wrong = new ScramClient({
    username: "alice",
    password: "wrong",
    serverMechanisms: server.mechanisms,
  });
  const ex = server.begin(server.parseFirst(wrong.mechanism, wrong.first), verifier);
  assert.equal(ex.sessionKey, null);
  await assert.rejects(ex.finish(await wrong.final(ex.serverFirst)), ProtocolError);
  assert.equal(ex.sessionKey, null);
  const right = new ScramClient({
    username: "ghost",
    password: "pencil",
    serverMechanisms: server.mechanisms,
  });
  const mock = server.begin(server.parseFirst(right.mechanism, right.first), verifier, { mock: true });
  await assert.rejects(mock.finish(await right.final(mock.serverFirst)), ProtocolError);
  assert.equal(mock.sessionKey, null, "a mock exchange never yields a key, even for a right proof");
});
