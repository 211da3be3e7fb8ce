import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  exportIdentityPrivate,
  generateIdentity,
  identityFingerprint,
  importIdentity,
  signWith,
  verifyIdentitySignature,
} from "../../lib/crypto/identity_key.ts";

const alice = await generateIdentity();
const bob = await generateIdentity();
const MESSAGE = new TextEncoder().encode("authchat-hs1/1 alice bob");

Deno.test("generateIdentity makes distinct 32-byte Ed25519 keys with an extractable private half", async () => {
  assert.equal(alice.publicKey.length, 32);
  assert.notDeepEqual(alice.publicKey, bob.publicKey);
  assert.equal(alice.privateKey.algorithm.name, "Ed25519");
  assert.equal(alice.privateKey.type, "private");
  assert.deepEqual(alice.privateKey.usages, ["sign"]);
  assert.equal((await exportIdentityPrivate(alice)).length, 48);
});

Deno.test("verifyIdentitySignature accepts a signature and refuses other messages, keys and signatures", async () => {
  const sig = await signWith(alice, MESSAGE);
  assert.equal(sig.length, 64);
  assert.equal(await verifyIdentitySignature(alice.publicKey, sig, MESSAGE), true);
  assert.equal(await verifyIdentitySignature(bob.publicKey, sig, MESSAGE), false);
  const other = new Uint8Array(MESSAGE);
  other[0]! ^= 1;
  assert.equal(await verifyIdentitySignature(alice.publicKey, sig, other), false);
  for (let i = 0; i < sig.length; i++) {
    const bad = new Uint8Array(sig);
    bad[i]! ^= 0x01;
    assert.equal(await verifyIdentitySignature(alice.publicKey, bad, MESSAGE), false, `byte ${i}`);
  }
});

Deno.test("verifyIdentitySignature returns false, never throws, for malformed keys and signatures", async () => {
  const sig = await signWith(alice, MESSAGE);
  for (
    const key of [new Uint8Array(0), new Uint8Array(31), new Uint8Array(33), new Uint8Array(32).fill(0xff)]
  ) {
    assert.equal(await verifyIdentitySignature(key, sig, MESSAGE), false, `key of ${key.length}`);
  }
  for (const bad of [new Uint8Array(0), sig.slice(0, 63), new Uint8Array([...sig, 0]), new Uint8Array(64)]) {
    assert.equal(await verifyIdentitySignature(alice.publicKey, bad, MESSAGE), false, `sig of ${bad.length}`);
  }
});

Deno.test("verifyIdentitySignature never throws on arbitrary bytes (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 30, maxLength: 34 }),
      fc.uint8Array({ minLength: 62, maxLength: 66 }),
      async (key, sig) => {
        assert.equal(await verifyIdentitySignature(new Uint8Array(key), new Uint8Array(sig), MESSAGE), false);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("importIdentity restores an identity that signs for the same public key", async () => {
  const pkcs8 = await exportIdentityPrivate(alice);
  const publicKey = new Uint8Array(alice.publicKey);
  const again = await importIdentity(pkcs8, publicKey);
  assert.deepEqual(again.publicKey, alice.publicKey);
  publicKey[0]! ^= 1;
  assert.deepEqual(again.publicKey, alice.publicKey, "the public key is a copy");
  const sig = await signWith(again, MESSAGE);
  assert.equal(await verifyIdentitySignature(alice.publicKey, sig, MESSAGE), true);
  assert.deepEqual(await exportIdentityPrivate(again), pkcs8);
});

Deno.test("importIdentity throws TypeError for a mismatched pair or a malformed key", async () => {
  const pkcs8 = await exportIdentityPrivate(alice);
  await assert.rejects(importIdentity(pkcs8, bob.publicKey), {
    name: "TypeError",
    message: "Invalid identity: the private key does not match the public key",
  });
  for (const key of [new Uint8Array(0), alice.publicKey.slice(0, 31), new Uint8Array(32).fill(0xff)]) {
    await assert.rejects(importIdentity(pkcs8, key), TypeError);
  }
  const truncated = pkcs8.slice(0, 40);
  const garbage = crypto.getRandomValues(new Uint8Array(48));
  for (const bad of [new Uint8Array(0), truncated, garbage]) {
    await assert.rejects(importIdentity(bad, alice.publicKey), {
      name: "TypeError",
      message: "Invalid identity private key: not an Ed25519 PKCS#8 key",
    });
  }
});

Deno.test("identityFingerprint is SHA256: and the unpadded base64 SHA-256 of the raw key", async () => {
  const expected = "SHA256:" +
    createHash("sha256").update(alice.publicKey).digest("base64").replace(/=+$/, "");
  assert.equal(await identityFingerprint(alice.publicKey), expected);
  assert.notEqual(await identityFingerprint(bob.publicKey), expected);
  await assert.rejects(identityFingerprint(new Uint8Array(31)), TypeError);
});
