import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Sealed } from "../../lib/codec/messages.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import {
  importSealPrivateKey,
  importSealPublicKey,
  openSealed,
  seal,
  sealContext,
} from "../../lib/crypto/seal.ts";
import { assertBytesEqual } from "../_bytes.ts";

// One RSA-3072 key pair for the whole file: generating it takes about two seconds.
const pair = await crypto.subtle.generateKey(
  { name: "RSA-OAEP", modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
  true,
  ["encrypt", "decrypt"],
);
const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
const publicKey = await importSealPublicKey(spki);
const privateKey = await importSealPrivateKey(pkcs8);

const utf8 = new TextEncoder();
const SECRET = utf8.encode("correct horse battery staple");
const CONTEXT = sealContext("REGISTER", { user: "alice", nonce: "bm9uY2Ux" });
const SEAL_MESSAGE = "Sealed secret could not be opened: wrong key, session or tampered data";

async function sealInvalid(promise: Promise<unknown>): Promise<string> {
  let message = "";
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "SEAL_INVALID");
    message = err.message;
    return true;
  });
  return message;
}

/** Flip one bit of a base64 field. */
function flip(field: string, byte = 0): string {
  const bytes = Buffer.from(field, "base64");
  bytes[byte % bytes.length]! ^= 0x01;
  return bytes.toString("base64");
}

Deno.test("openSealed returns what seal sealed for the same context", async () => {
  const sealed = await seal(publicKey, SECRET, CONTEXT);
  assert.deepEqual(await openSealed(privateKey, sealed, CONTEXT), SECRET);
  const empty = await seal(publicKey, new Uint8Array(0), CONTEXT);
  assert.deepEqual(await openSealed(privateKey, empty, CONTEXT), new Uint8Array(0));
  const big = new Uint8Array(1024).map((_, i) => i);
  assertBytesEqual(await openSealed(privateKey, await seal(publicKey, big, CONTEXT), CONTEXT), big);
});

Deno.test("seal wraps a fresh key and IV each time, sized for RSA-3072 and AES-GCM", async () => {
  const a = await seal(publicKey, SECRET, CONTEXT);
  const b = await seal(publicKey, SECRET, CONTEXT);
  assert.equal(Buffer.from(a.key, "base64").length, 384);
  assert.equal(Buffer.from(a.iv, "base64").length, 12);
  assert.equal(Buffer.from(a.ct, "base64").length, SECRET.length + 16);
  assert.notEqual(a.key, b.key);
  assert.notEqual(a.iv, b.iv);
  assert.notEqual(a.ct, b.ct);
});

Deno.test("sealContext keeps op, user and nonce apart so no two bindings collide", () => {
  const ctx = (op: string, user: string, nonce: string) =>
    Buffer.from(sealContext(op, { user, nonce })).toString();
  assert.notEqual(ctx("REGISTER", "a", "bc"), ctx("REGISTER", "ab", "c"));
  assert.notEqual(ctx("REGISTER", 'a","b', "c"), ctx("REGISTER", "a", 'b","c'));
  assert.notEqual(ctx("REGISTER", "a", "n"), ctx("PASSWD", "a", "n"));
  assert.equal(ctx("REGISTER", "a", "n"), ctx("REGISTER", "a", "n"));
});

Deno.test("openSealed refuses a secret sealed for another op, user or session nonce", async () => {
  const sealed = await seal(publicKey, SECRET, CONTEXT);
  await sealInvalid(
    openSealed(privateKey, sealed, sealContext("PASSWD", { user: "alice", nonce: "bm9uY2Ux" })),
  );
  await sealInvalid(
    openSealed(privateKey, sealed, sealContext("REGISTER", { user: "bob", nonce: "bm9uY2Ux" })),
  );
  await sealInvalid(
    openSealed(privateKey, sealed, sealContext("REGISTER", { user: "Alice", nonce: "bm9uY2Ux" })),
  );
  await sealInvalid(
    openSealed(privateKey, sealed, sealContext("REGISTER", { user: "alice", nonce: "bm9uY2Uy" })),
  );
});

Deno.test("openSealed refuses tampered fields with one and the same message", async () => {
  const sealed = await seal(publicKey, SECRET, CONTEXT);
  const ivBytes = Buffer.from(sealed.iv, "base64");
  const tampered: Sealed[] = [
    { ...sealed, ct: flip(sealed.ct) },
    { ...sealed, ct: flip(sealed.ct, SECRET.length + 3) }, // the GCM tag
    { ...sealed, ct: Buffer.from(sealed.ct, "base64").subarray(0, 10).toString("base64") },
    { ...sealed, ct: "" },
    { ...sealed, iv: flip(sealed.iv) },
    { ...sealed, iv: Buffer.concat([ivBytes, Buffer.alloc(4)]).toString("base64") },
    { ...sealed, iv: "not base64" },
    { ...sealed, key: flip(sealed.key, 100) },
    { ...sealed, key: Buffer.from(sealed.key, "base64").subarray(1).toString("base64") },
    { ...sealed, key: "" },
    { ...sealed, key: sealed.key.slice(0, -1) },
  ];
  const messages = new Set<string>();
  for (const t of tampered) messages.add(await sealInvalid(openSealed(privateKey, t, CONTEXT)));
  assert.deepEqual([...messages], [SEAL_MESSAGE]);
});

Deno.test("openSealed refuses a secret sealed to another key", async () => {
  const other = await crypto.subtle.generateKey(
    { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  );
  const sealed = await seal(other.publicKey, SECRET, CONTEXT);
  assert.equal(await sealInvalid(openSealed(privateKey, sealed, CONTEXT)), SEAL_MESSAGE);
});

Deno.test("openSealed refuses a wrapped key that is not 32 bytes", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(16));
  const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: CONTEXT }, aes, SECRET),
  );
  const key = new Uint8Array(await crypto.subtle.encrypt({ name: "RSA-OAEP" }, publicKey, raw));
  const b64 = (x: Uint8Array) => Buffer.from(x).toString("base64");
  await sealInvalid(openSealed(privateKey, { key: b64(key), iv: b64(iv), ct: b64(ct) }, CONTEXT));
});
