import assert from "node:assert/strict";
import {
  deriveSessionKeys,
  type EphemeralKeyPair,
  generateEphemeral,
  type SessionKeys,
} from "../../lib/crypto/peer_session.ts";

const IV = new Uint8Array(12);
const PLAINTEXT = new TextEncoder().encode("hello bob");

async function handshake(
  a: EphemeralKeyPair,
  b: EphemeralKeyPair,
  names = { initiator: "alice", responder: "bob" },
): Promise<[SessionKeys, SessionKeys]> {
  const common = { ...names, ephInit: a.publicKey, ephResp: b.publicKey };
  return [
    await deriveSessionKeys({
      ...common,
      ephemeralPrivate: a.privateKey,
      peerEphemeral: b.publicKey,
      role: "initiator",
    }),
    await deriveSessionKeys({
      ...common,
      ephemeralPrivate: b.privateKey,
      peerEphemeral: a.publicKey,
      role: "responder",
    }),
  ];
}

/** A session key as WebCrypto sees it: the keys are checked with an independent AES-GCM. */
function aes(key: CryptoKey | Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return key instanceof Uint8Array
    ? crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"])
    : Promise.resolve(key);
}

async function encrypt(key: CryptoKey | Uint8Array<ArrayBuffer>): Promise<ArrayBuffer> {
  return await crypto.subtle.encrypt({ name: "AES-GCM", iv: IV }, await aes(key), PLAINTEXT);
}

async function opens(key: CryptoKey | Uint8Array<ArrayBuffer>, ct: ArrayBuffer): Promise<boolean> {
  try {
    assert.deepEqual(
      new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: IV }, await aes(key), ct)),
      PLAINTEXT,
    );
    return true;
  } catch (err) {
    if (err instanceof DOMException && err.name === "OperationError") return false;
    throw err;
  }
}

Deno.test("generateEphemeral makes fresh 32-byte X25519 keys with a non-extractable private half", async () => {
  const a = await generateEphemeral();
  const b = await generateEphemeral();
  assert.equal(a.publicKey.length, 32);
  assert.notDeepEqual(a.publicKey, b.publicKey);
  assert.equal(a.privateKey.algorithm.name, "X25519");
  assert.equal(a.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", a.privateKey));
});

Deno.test("deriveSessionKeys gives both roles the same session id and matching directional keys", async () => {
  const [alice, bob] = await handshake(await generateEphemeral(), await generateEphemeral());
  assert.equal(alice.sessionId.length, 8);
  assert.deepEqual(alice.sessionId, bob.sessionId);
  assert.ok(await opens(bob.receiveKey, await encrypt(alice.sendKey)), "initiator to responder");
  assert.ok(await opens(alice.receiveKey, await encrypt(bob.sendKey)), "responder to initiator");
  assert.equal(alice.sendKey.length, 32);
  assert.equal(alice.receiveKey.length, 32);
  assert.notDeepEqual(alice.sendKey, alice.receiveKey, "one key per direction");
});

Deno.test("deriveSessionKeys uses a different key in each direction", async () => {
  const [alice, bob] = await handshake(await generateEphemeral(), await generateEphemeral());
  // Same nonce, same plaintext: equal keys would give equal ciphertexts.
  assert.notDeepEqual(
    new Uint8Array(await encrypt(alice.sendKey)),
    new Uint8Array(await encrypt(bob.sendKey)),
  );
  assert.equal(await opens(bob.receiveKey, await encrypt(bob.sendKey)), false, "own key does not reflect");
  assert.equal(
    await opens(alice.receiveKey, await encrypt(alice.sendKey)),
    false,
    "own key does not reflect",
  );
});

Deno.test("deriveSessionKeys follows the specified HKDF schedule (independent recomputation)", async () => {
  const a = await generateEphemeral();
  const b = await generateEphemeral();
  const [alice, bob] = await handshake(a, b);
  const peer = await crypto.subtle.importKey("raw", b.publicKey, { name: "X25519" }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: "X25519", public: peer }, a.privateKey, 256);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const salt = new Uint8Array([...a.publicKey, ...b.publicKey]);
  const hkdf = async (label: string, bits: number) =>
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt,
        info: new TextEncoder().encode(`authchat-dm/2 ${label}\0alice\0bob`),
      },
      ikm,
      bits,
    );
  assert.deepEqual(alice.sessionId, new Uint8Array(await hkdf("sid", 64)));
  const i2r = await crypto.subtle.importKey("raw", await hkdf("i2r", 256), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  const r2i = await crypto.subtle.importKey("raw", await hkdf("r2i", 256), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  assert.ok(await opens(i2r, await encrypt(alice.sendKey)));
  assert.ok(await opens(bob.receiveKey, await encrypt(i2r)));
  assert.ok(await opens(r2i, await encrypt(bob.sendKey)));
  assert.ok(await opens(alice.receiveKey, await encrypt(r2i)));
});

Deno.test("deriveSessionKeys gives different keys for different ephemerals or names", async () => {
  const a = await generateEphemeral();
  const b = await generateEphemeral();
  const [alice] = await handshake(a, b);
  const [, bob2] = await handshake(a, await generateEphemeral());
  assert.notDeepEqual(alice.sessionId, bob2.sessionId);
  assert.equal(await opens(bob2.receiveKey, await encrypt(alice.sendKey)), false);
  const [, bob3] = await handshake(await generateEphemeral(), b);
  assert.equal(await opens(bob3.receiveKey, await encrypt(alice.sendKey)), false);
  const [, carol] = await handshake(a, b, { initiator: "alice", responder: "carol" });
  assert.notDeepEqual(alice.sessionId, carol.sessionId);
  assert.equal(await opens(carol.receiveKey, await encrypt(alice.sendKey)), false);
  const [, swapped] = await handshake(a, b, { initiator: "bob", responder: "alice" });
  assert.notDeepEqual(alice.sessionId, swapped.sessionId);
});

Deno.test("deriveSessionKeys refuses low-order peer keys that give an all-zero secret", async () => {
  const a = await generateEphemeral();
  const lowOrder = [
    new Uint8Array(32),
    Uint8Array.fromHex("01" + "00".repeat(31)),
    Uint8Array.fromHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    Uint8Array.fromHex("ec" + "ff".repeat(30) + "7f"),
  ];
  for (const evil of lowOrder) {
    await assert.rejects(
      deriveSessionKeys({
        ephemeralPrivate: a.privateKey,
        peerEphemeral: evil,
        initiator: "alice",
        responder: "mallory",
        ephInit: a.publicKey,
        ephResp: evil,
        role: "initiator",
      }),
      {
        name: "TypeError",
        message: "Invalid peer ephemeral key: low-order point gives an all-zero shared secret",
      },
    );
  }
});

Deno.test("deriveSessionKeys throws TypeError for inconsistent or malformed input", async () => {
  const a = await generateEphemeral();
  const b = await generateEphemeral();
  const good = {
    ephemeralPrivate: a.privateKey,
    peerEphemeral: b.publicKey,
    initiator: "alice",
    responder: "bob",
    ephInit: a.publicKey,
    ephResp: b.publicKey,
    role: "initiator" as const,
  };
  await deriveSessionKeys(good);
  const bad = [
    { ...good, peerEphemeral: b.publicKey.slice(0, 31) },
    { ...good, ephInit: new Uint8Array(33) },
    { ...good, peerEphemeral: a.publicKey },
    { ...good, role: "responder" as const },
    { ...good, initiator: "al\0ice" },
    { ...good, responder: "bob\0" },
  ];
  for (const input of bad) await assert.rejects(deriveSessionKeys(input), TypeError);
});
