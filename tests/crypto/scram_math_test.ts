import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { deriveKeys, digest, hashLength, hmac, saltedPassword, xor } from "../../lib/crypto/scram_math.ts";

const SALT = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const u8 = (b: Uint8Array) => new Uint8Array(b);

Deno.test("saltedPassword equals PBKDF2 from node:crypto for SHA-256 and SHA-1", async () => {
  assert.deepEqual(
    await saltedPassword("pencil", { salt: SALT, iterations: 4096 }),
    u8(pbkdf2Sync("pencil", SALT, 4096, 32, "sha256")),
  );
  assert.deepEqual(
    await saltedPassword("pencil", { salt: SALT, iterations: 4096, hash: "SHA-1" }),
    u8(pbkdf2Sync("pencil", SALT, 4096, 20, "sha1")),
  );
  assert.equal(hashLength("SHA-256"), 32);
  assert.equal(hashLength("SHA-1"), 20);
});

Deno.test("hmac and digest equal node:crypto for strings and bytes", async () => {
  const key = new Uint8Array(32).fill(3);
  assert.deepEqual(
    await hmac(key, "Client Key"),
    u8(createHmac("sha256", key).update("Client Key").digest()),
  );
  assert.deepEqual(await hmac(key, SALT, "SHA-1"), u8(createHmac("sha1", key).update(SALT).digest()));
  assert.deepEqual(await digest(SALT), u8(createHash("sha256").update(SALT).digest()));
  assert.deepEqual(await digest(SALT, "SHA-1"), u8(createHash("sha1").update(SALT).digest()));
});

Deno.test("deriveKeys computes ClientKey, StoredKey and ServerKey as RFC 5802 §3 defines them", async () => {
  const salted = u8(pbkdf2Sync("pencil", SALT, 4096, 32, "sha256"));
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const keys = await deriveKeys(salted);
  assert.deepEqual(keys.clientKey, u8(clientKey));
  assert.deepEqual(keys.storedKey, u8(createHash("sha256").update(clientKey).digest()));
  assert.deepEqual(keys.serverKey, u8(createHmac("sha256", salted).update("Server Key").digest()));
});

Deno.test("xor combines equal-length arrays and refuses different lengths with a RangeError", () => {
  assert.deepEqual(
    xor(new Uint8Array([0xff, 0x0f, 0]), new Uint8Array([0x0f, 0x0f, 1])),
    new Uint8Array([0xf0, 0, 1]),
  );
  assert.throws(() => xor(new Uint8Array(2), new Uint8Array(3)), {
    name: "RangeError",
    message: "Length mismatch: 2 and 3 bytes",
  });
});
