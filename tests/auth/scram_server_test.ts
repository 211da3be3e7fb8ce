import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { mockVerifier, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramServer } from "../../lib/auth/scram_server.ts";
import type { ScramServerOptions } from "../../lib/auth/scram_server.ts";
import { deriveKeys, saltedPassword } from "../../lib/crypto/scram_math.ts";
import { createVerifier } from "../../lib/crypto/scram_verifier.ts";
import type { ScramVerifier } from "../../lib/crypto/scram_verifier.ts";
import { RFC5802, RFC7677 } from "./_rfc_vectors.ts";
import type { ScramVector } from "./_rfc_vectors.ts";

const ITERATIONS = 4096;

async function vectorVerifier(v: ScramVector): Promise<ScramVerifier> {
  const salt = Uint8Array.fromBase64(v.salt);
  const keys = await deriveKeys(
    await saltedPassword(v.password, { salt, iterations: v.iterations, hash: v.hash }),
    v.hash,
  );
  return { iterations: v.iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, scram?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code, err.message);
    if (scram !== undefined) assert.equal(err.details.scram, scram);
    return true;
  });
}

function throwsWith(fn: () => unknown, code: ErrorCode, scram?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code, err.message);
    if (scram !== undefined) assert.equal(err.details.scram, scram);
    return true;
  });
}

const verifierFor = (password: string) => createVerifier(password, { iterations: ITERATIONS });

/** Run a whole exchange; returns the server-final-message the client accepted. */
async function login(
  serverOptions: ScramServerOptions,
  client: ScramClient,
  verifier: ScramVerifier,
): Promise<string> {
  const server = new ScramServer(serverOptions);
  const exchange = server.begin(server.parseFirst(client.mechanism, client.first), verifier);
  const serverFinal = await exchange.finish(await client.final(exchange.serverFirst));
  client.verify(serverFinal);
  return serverFinal;
}

for (const v of [RFC7677, RFC5802]) {
  Deno.test(`ScramServer produces the exact ${v.hash} messages of the RFC example`, async () => {
    const server = new ScramServer({ serverNonce: v.serverNonce, hash: v.hash });
    const first = server.parseFirst(SCRAM_SHA_256, v.clientFirst);
    assert.equal(first.username, v.username);
    const exchange = server.begin(first, await vectorVerifier(v));
    assert.equal(exchange.serverFirst, v.serverFirst);
    assert.equal(exchange.username, "user");
    assert.equal(await exchange.finish(v.clientFinal), v.serverFinal);
  });
}

Deno.test("ScramServer accepts the RFC 7677 exchange against a verifier from createVerifier", async () => {
  const verifier = await createVerifier("pencil", {
    iterations: 4096,
    salt: Uint8Array.fromBase64(RFC7677.salt),
  });
  const server = new ScramServer({ serverNonce: RFC7677.serverNonce });
  const exchange = server.begin(server.parseFirst(SCRAM_SHA_256, RFC7677.clientFirst), verifier);
  assert.equal(await exchange.finish(RFC7677.clientFinal), RFC7677.serverFinal);
});

Deno.test("ScramServer and ScramClient agree with random nonces", async () => {
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: [SCRAM_SHA_256],
  });
  assert.match(await login({}, client, await verifierFor("pencil")), /^v=[A-Za-z0-9+/]{43}=$/);
});

Deno.test("ScramServerExchange rejects a wrong proof with AUTH_FAILED invalid-proof", async () => {
  const server = new ScramServer();
  const client = new ScramClient({
    username: "alice",
    password: "wrong",
    serverMechanisms: server.mechanisms,
  });
  const exchange = server.begin(
    server.parseFirst(client.mechanism, client.first),
    await verifierFor("pencil"),
  );
  await rejectsWith(
    exchange.finish(await client.final(exchange.serverFirst)),
    "AUTH_FAILED",
    "invalid-proof",
  );
});

Deno.test("ScramServerExchange rejects a proof of the wrong length with AUTH_FAILED", async () => {
  const server = new ScramServer({ serverNonce: RFC7677.serverNonce });
  const exchange = server.begin(
    server.parseFirst(SCRAM_SHA_256, RFC7677.clientFirst),
    await vectorVerifier(RFC7677),
  );
  const short = RFC7677.clientFinal.replace(/p=.*$/, "p=dHzbZapWIk4jUhN+Ute9yg==");
  await rejectsWith(exchange.finish(short), "AUTH_FAILED", "invalid-proof");
});

Deno.test("ScramServerExchange rejects a replayed client-final message", async () => {
  const server = new ScramServer({ serverNonce: RFC7677.serverNonce });
  const exchange = server.begin(
    server.parseFirst(SCRAM_SHA_256, RFC7677.clientFirst),
    await vectorVerifier(RFC7677),
  );
  assert.equal(await exchange.finish(RFC7677.clientFinal), RFC7677.serverFinal);
  await rejectsWith(exchange.finish(RFC7677.clientFinal), "AUTH_FAILED");
});

Deno.test("ScramServerExchange finishes once even after a malformed message", async () => {
  const server = new ScramServer({ serverNonce: RFC7677.serverNonce });
  const exchange = server.begin(
    server.parseFirst(SCRAM_SHA_256, RFC7677.clientFirst),
    await vectorVerifier(RFC7677),
  );
  await rejectsWith(exchange.finish("garbage"), "BAD_SCRAM");
  await rejectsWith(exchange.finish(RFC7677.clientFinal), "AUTH_FAILED");
});

Deno.test("ScramServerExchange rejects a client-final message from another exchange", async () => {
  const verifier = await verifierFor("pencil");
  const server = new ScramServer();
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
  });
  const first = server.parseFirst(client.mechanism, client.first);
  const a = server.begin(first, verifier);
  const b = server.begin(first, verifier);
  assert.notEqual(a.serverFirst, b.serverFirst, "each exchange draws its own server nonce");
  const finalForA = await client.final(a.serverFirst);
  await rejectsWith(b.finish(finalForA), "AUTH_FAILED");
});

Deno.test("ScramServerExchange of a mock exchange fails even with a proof that would be right", async () => {
  const verifier = await verifierFor("pencil");
  const server = new ScramServer();
  const client = new ScramClient({
    username: "ghost",
    password: "pencil",
    serverMechanisms: server.mechanisms,
  });
  const exchange = server.begin(server.parseFirst(client.mechanism, client.first), verifier, { mock: true });
  await rejectsWith(
    exchange.finish(await client.final(exchange.serverFirst)),
    "AUTH_FAILED",
    "invalid-proof",
  );
});

Deno.test("mockVerifier gives a stable salt per name and secret, and the configured count", async () => {
  const secret = new Uint8Array(32).fill(1);
  const a1 = await mockVerifier(secret, "ghost", 600_000);
  const a2 = await mockVerifier(secret, "ghost", 600_000);
  const b = await mockVerifier(secret, "phantom", 600_000);
  const other = await mockVerifier(new Uint8Array(32).fill(2), "ghost", 600_000);
  assert.deepEqual(a1.salt, a2.salt);
  assert.deepEqual(a1.storedKey, a2.storedKey);
  assert.notDeepEqual(a1.salt, b.salt);
  assert.notDeepEqual(a1.salt, other.salt);
  assert.equal(a1.iterations, 600_000);
  assert.equal(b.iterations, 600_000);
  const real = await verifierFor("pencil");
  assert.equal(a1.salt.length, real.salt.length, "a mock salt looks like a real one");
  assert.equal(a1.storedKey.length, 32);
  assert.equal(a1.serverKey.length, 32);
});

Deno.test("ScramServer offers PLUS first only when it has binding data", () => {
  assert.deepEqual(new ScramServer().mechanisms, [SCRAM_SHA_256]);
  assert.deepEqual(new ScramServer({ channelBinding: new Uint8Array(32) }).mechanisms, [
    SCRAM_SHA_256_PLUS,
    SCRAM_SHA_256,
  ]);
});

Deno.test("ScramServer accepts PLUS with matching binding data", async () => {
  const cb = crypto.getRandomValues(new Uint8Array(32));
  const server = new ScramServer({ channelBinding: cb });
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    channelBinding: cb.slice(),
  });
  assert.equal(client.mechanism, SCRAM_SHA_256_PLUS);
  await login({ channelBinding: cb }, client, await verifierFor("pencil"));
});

Deno.test("ScramServer refuses binding data that differs from the client's with CHANNEL_BINDING", async () => {
  const serverCb = new Uint8Array(32).fill(1);
  const server = new ScramServer({ channelBinding: serverCb });
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    channelBinding: new Uint8Array(32).fill(2),
  });
  const exchange = server.begin(
    server.parseFirst(client.mechanism, client.first),
    await verifierFor("pencil"),
  );
  await rejectsWith(
    exchange.finish(await client.final(exchange.serverFirst)),
    "CHANNEL_BINDING",
    "channel-bindings-dont-match",
  );
});

Deno.test("ScramServer refuses the y flag when it supports binding (downgrade)", () => {
  const cb = new Uint8Array(32);
  // What an RFC 5802 client that can bind sends after seeing a mechanism list an attacker stripped.
  const first = "y,,n=alice,r=abcdef";
  throwsWith(
    () => new ScramServer({ channelBinding: cb }).parseFirst(SCRAM_SHA_256, first),
    "CHANNEL_BINDING",
    "server-does-support-channel-binding",
  );
  assert.equal(new ScramServer().parseFirst(SCRAM_SHA_256, first).cbindFlag, "y");
});

Deno.test("ScramServer without binding refuses the PLUS mechanism with UNSUPPORTED_MECHANISM", () => {
  throwsWith(
    () => new ScramServer().parseFirst(SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=user,r=abc"),
    "UNSUPPORTED_MECHANISM",
  );
  throwsWith(() => new ScramServer().parseFirst("SCRAM-SHA-1", "n,,n=user,r=abc"), "UNSUPPORTED_MECHANISM");
});

Deno.test("ScramServer refuses the p= flag with the plain mechanism with CHANNEL_BINDING", () => {
  const text = "p=tls-server-end-point,,n=user,r=abc";
  throwsWith(
    () => new ScramServer().parseFirst(SCRAM_SHA_256, text),
    "CHANNEL_BINDING",
    "channel-binding-not-supported",
  );
  throwsWith(
    () => new ScramServer({ channelBinding: new Uint8Array(32) }).parseFirst(SCRAM_SHA_256, text),
    "CHANNEL_BINDING",
  );
});

Deno.test("ScramServer refuses PLUS without the p= flag or with an unknown cb-name", () => {
  const server = new ScramServer({ channelBinding: new Uint8Array(32) });
  throwsWith(() => server.parseFirst(SCRAM_SHA_256_PLUS, "n,,n=user,r=abc"), "CHANNEL_BINDING");
  throwsWith(() => server.parseFirst(SCRAM_SHA_256_PLUS, "y,,n=user,r=abc"), "CHANNEL_BINDING");
  throwsWith(
    () => server.parseFirst(SCRAM_SHA_256_PLUS, "p=tls-unique,,n=user,r=abc"),
    "CHANNEL_BINDING",
    "unsupported-channel-binding-type",
  );
});

Deno.test("ScramServer and ScramClient bind with authchat-udp-exporter on a UDP session", async () => {
  const cb = crypto.getRandomValues(new Uint8Array(32));
  const server = new ScramServer({ channelBinding: cb, channelBindingType: "authchat-udp-exporter" });
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    channelBinding: cb.slice(),
    channelBindingType: "authchat-udp-exporter",
  });
  assert.equal(client.mechanism, SCRAM_SHA_256_PLUS);
  assert(client.first.startsWith("p=authchat-udp-exporter,,n=alice,r="));
  await login(
    { channelBinding: cb, channelBindingType: "authchat-udp-exporter" },
    client,
    await verifierFor("pencil"),
  );
});

Deno.test("ScramServer on a UDP session refuses tls-server-end-point, and on TLS the UDP binding type", () => {
  const udp = new ScramServer({
    channelBinding: new Uint8Array(32),
    channelBindingType: "authchat-udp-exporter",
  });
  throwsWith(
    () => udp.parseFirst(SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=user,r=abc"),
    "CHANNEL_BINDING",
    "unsupported-channel-binding-type",
  );
  const tls = new ScramServer({ channelBinding: new Uint8Array(32) });
  throwsWith(
    () => tls.parseFirst(SCRAM_SHA_256_PLUS, "p=authchat-udp-exporter,,n=user,r=abc"),
    "CHANNEL_BINDING",
    "unsupported-channel-binding-type",
  );
});

Deno.test("ScramServer refuses a SCRAM exchange relayed between two UDP handshakes (bindings differ)", async () => {
  // A man in the middle runs one handshake with the client and another with the server: two bindings.
  const server = new ScramServer({
    channelBinding: new Uint8Array(32).fill(1),
    channelBindingType: "authchat-udp-exporter",
  });
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    channelBinding: new Uint8Array(32).fill(2),
    channelBindingType: "authchat-udp-exporter",
  });
  const exchange = server.begin(
    server.parseFirst(client.mechanism, client.first),
    await verifierFor("pencil"),
  );
  await rejectsWith(
    exchange.finish(await client.final(exchange.serverFirst)),
    "CHANNEL_BINDING",
    "channel-bindings-dont-match",
  );
});

Deno.test("ScramServer refuses an unbound client-final message on a PLUS exchange", async () => {
  const cb = new Uint8Array(32).fill(7);
  const server = new ScramServer({ channelBinding: cb, serverNonce: "srv" });
  const exchange = server.begin(
    server.parseFirst(SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=user,r=abc"),
    await verifierFor("pencil"),
  );
  await rejectsWith(exchange.finish("c=biws,r=abcsrv,p=AAAA"), "CHANNEL_BINDING");
});

Deno.test("ScramServer completes an exchange for a client nonce of the longest length it accepts", async () => {
  // Client nonces are capped at 256 characters so that, with the server's 32 appended, the combined
  // nonce stays within the 512 characters every later message allows.
  const nonce = "n".repeat(256);
  const server = new ScramServer();
  await rejectsWith(
    Promise.resolve().then(() => server.parseFirst(SCRAM_SHA_256, `n,,n=alice,r=${nonce}n`)),
    "BAD_SCRAM",
  );
  assert.equal(server.parseFirst(SCRAM_SHA_256, `n,,n=alice,r=${nonce}`).nonce, nonce);
  const client = new ScramClient({
    username: "alice",
    password: "pencil",
    serverMechanisms: server.mechanisms,
    nonce,
  });
  await login({}, client, await verifierFor("pencil"));
});
