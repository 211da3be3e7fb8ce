import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { createVerifier, verifierMatches } from "../../lib/crypto/scram_verifier.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import type { SaltedPasswordCache } from "../../lib/auth/scram_client.ts";
import { SCRAM_SHA_256, SCRAM_SHA_256_PLUS } from "../../lib/auth/scram_server.ts";
import { RFC5802, RFC7677 } from "./_rfc_vectors.ts";
import type { ScramVector } from "./_rfc_vectors.ts";

const PLAIN = [SCRAM_SHA_256];
const BOTH = [SCRAM_SHA_256_PLUS, SCRAM_SHA_256];
const CB = new Uint8Array(32).fill(0xcb);

function clientFor(
  v: ScramVector,
  extra: Partial<ConstructorParameters<typeof ScramClient>[0]> = {},
): ScramClient {
  return new ScramClient({
    username: v.username,
    password: v.password,
    serverMechanisms: PLAIN,
    nonce: v.clientNonce,
    hash: v.hash,
    ...extra,
  });
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

function throwsWith(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

for (const v of [RFC7677, RFC5802]) {
  Deno.test(`ScramClient produces the exact ${v.hash} messages of the RFC example`, async () => {
    const client = clientFor(v);
    assert.equal(client.mechanism, SCRAM_SHA_256);
    assert.equal(client.first, v.clientFirst);
    assert.equal(await client.final(v.serverFirst), v.clientFinal);
    client.verify(v.serverFinal);
  });
}

Deno.test("ScramClient gives the account's verifier only once the server's signature verified", async () => {
  const client = clientFor(RFC7677);
  await client.final(RFC7677.serverFirst);
  assert.equal(client.verifier, null, "not before verify");
  client.verify(RFC7677.serverFinal);
  const verifier = client.verifier!;
  assert.equal(verifier.iterations, 4096);
  assert.equal(encodeBase64(verifier.salt), RFC7677.salt);
  const expected = await createVerifier("pencil", { iterations: 4096, salt: verifier.salt });
  assert.deepEqual(verifier, expected);
  assert.equal(await verifierMatches("pencil", verifier), true);
  assert.equal(await verifierMatches("pencil ", verifier), false);
});

Deno.test("ScramClient SASLprep-maps the password, so a soft hyphen gives the RFC proof", async () => {
  const client = clientFor(RFC7677, { password: "pen\u00ADcil" });
  assert.equal(await client.final(RFC7677.serverFirst), RFC7677.clientFinal);
});

Deno.test("ScramClient escapes ',' and '=' and SASLpreps the user name", () => {
  assert.equal(clientFor(RFC7677, { username: "a,b=c" }).first, "n,,n=a=2Cb=3Dc,r=rOprNGfwEbeRWgbNEkqO");
  assert.equal(clientFor(RFC7677, { username: "\u2168" }).first, "n,,n=IX,r=rOprNGfwEbeRWgbNEkqO");
});

Deno.test("ScramClient refuses a password SASLprep prohibits with a RangeError", () => {
  assert.throws(() => clientFor(RFC7677, { password: "bell\u0007" }), RangeError);
});

Deno.test("ScramClient draws a random base64 nonce when none is given", () => {
  const a = new ScramClient({ username: "u", password: "p", serverMechanisms: PLAIN });
  const b = new ScramClient({ username: "u", password: "p", serverMechanisms: PLAIN });
  assert.match(a.first, /^n,,n=u,r=[A-Za-z0-9+/]{32}$/);
  assert.notEqual(a.first, b.first);
});

Deno.test("ScramClient refuses iteration counts 4095 and 10,000,001 with BAD_SCRAM", async () => {
  for (const i of [4095, 10_000_001]) {
    const sf = RFC7677.serverFirst.replace("i=4096", `i=${i}`);
    await rejectsWith(clientFor(RFC7677).final(sf), "BAD_SCRAM");
  }
});

Deno.test("ScramClient refuses a server nonce that does not extend its own with BAD_SCRAM", async () => {
  const salt = `s=${RFC7677.salt},i=4096`;
  await rejectsWith(clientFor(RFC7677).final(`r=someoneElsesNonce123,${salt}`), "BAD_SCRAM");
  await rejectsWith(clientFor(RFC7677).final(`r=${RFC7677.clientNonce},${salt}`), "BAD_SCRAM");
  await rejectsWith(clientFor(RFC7677).final(`r=XrOprNGfwEbeRWgbNEkqOabc,${salt}`), "BAD_SCRAM");
});

Deno.test("ScramClient.verify refuses a wrong server signature with AUTH_FAILED", async () => {
  const client = clientFor(RFC7677);
  await client.final(RFC7677.serverFirst);
  throwsWith(() => client.verify("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), "AUTH_FAILED");
  throwsWith(() => client.verify("v="), "AUTH_FAILED");
});

Deno.test("ScramClient.verify turns an e= reply into AUTH_FAILED", async () => {
  const client = clientFor(RFC7677);
  await client.final(RFC7677.serverFirst);
  assert.throws(() => client.verify("e=invalid-proof"), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "AUTH_FAILED");
    assert.match(err.message, /invalid-proof/);
    return true;
  });
});

Deno.test("ScramClient.verify before final is BAD_SCRAM", () => {
  throwsWith(() => clientFor(RFC7677).verify(RFC7677.serverFinal), "BAD_SCRAM");
});

Deno.test("ScramClient with binding data picks the PLUS mechanism when offered", async () => {
  const client = clientFor(RFC7677, { channelBinding: CB, serverMechanisms: BOTH });
  assert.equal(client.mechanism, SCRAM_SHA_256_PLUS);
  assert.equal(client.bound, true);
  assert.equal(client.first, "p=tls-server-end-point,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const final = await client.final(RFC7677.serverFirst);
  const c = /^c=([^,]+),/.exec(final)?.[1];
  assert.ok(c);
  const expected = new Uint8Array([...new TextEncoder().encode("p=tls-server-end-point,,"), ...CB]);
  assert.deepEqual(Uint8Array.fromBase64(c), expected);
});

Deno.test("ScramClient with binding data refuses a server that offers no PLUS mechanism (downgrade)", () => {
  throwsWith(() => clientFor(RFC7677, { channelBinding: CB, serverMechanisms: PLAIN }), "CHANNEL_BINDING");
});

Deno.test("ScramClient without binding data uses the plain mechanism even when PLUS is offered", () => {
  const client = clientFor(RFC7677, { serverMechanisms: BOTH });
  assert.equal(client.mechanism, SCRAM_SHA_256);
  assert.equal(client.bound, false);
  assert.ok(client.first.startsWith("n,,"));
});

Deno.test("ScramClient refuses a server that offers no usable mechanism", () => {
  throwsWith(() => clientFor(RFC7677, { serverMechanisms: ["SCRAM-SHA-1", "PLAIN"] }), "AUTH_FAILED");
  throwsWith(() => clientFor(RFC7677, { serverMechanisms: [] }), "AUTH_FAILED");
});

Deno.test("ScramClient reuses the cached keys of a SaltedPassword for the same password, salt and count", async () => {
  const cache: SaltedPasswordCache = new Map();
  assert.equal(await clientFor(RFC7677, { cache }).final(RFC7677.serverFirst), RFC7677.clientFinal);
  assert.equal(cache.size, 1);
  assert.equal(await clientFor(RFC7677, { cache }).final(RFC7677.serverFirst), RFC7677.clientFinal);
  assert.equal(cache.size, 1);
  // Spoil the cached value: a client that reads it must now compute a different proof.
  [...cache.values()][0]!.clientKey.fill(0);
  assert.notEqual(await clientFor(RFC7677, { cache }).final(RFC7677.serverFirst), RFC7677.clientFinal);
  await clientFor(RFC7677, { cache, password: "other" }).final(RFC7677.serverFirst);
  assert.equal(cache.size, 2, "another password is another entry");
});

Deno.test("ScramClient keeps no password in its SaltedPassword cache, not even one that failed", async () => {
  const cache: SaltedPasswordCache = new Map();
  const wrong = "correct horse battery staple";
  await clientFor(RFC7677, { cache }).final(RFC7677.serverFirst);
  await clientFor(RFC7677, { cache, password: wrong }).final(RFC7677.serverFirst);
  assert.equal(cache.size, 2);
  const salt = RFC7677.serverFirst.match(/,s=([^,]+)/)![1]!;
  for (const key of cache.keys()) {
    for (const secret of [RFC7677.password, wrong]) assert.ok(!key.includes(secret), JSON.stringify(key));
    assert.ok(!key.includes(salt), "an opaque key, not the inputs");
  }
  assert.equal(await clientFor(RFC7677, { cache }).final(RFC7677.serverFirst), RFC7677.clientFinal);
  assert.equal(cache.size, 2, "the same password, salt and count find their entry");
});
