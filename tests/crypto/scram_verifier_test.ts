import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import {
  checkIterations,
  createVerifier,
  formatVerifier,
  MAX_ITERATIONS,
  MIN_ITERATIONS,
  parseVerifier,
  SALT_BYTES,
} from "../../lib/crypto/scram_verifier.ts";

const ITERATIONS = 4096;
const SALT = new Uint8Array(Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"));

/** RFC 5802 §3 and RFC 7677 on node:crypto, formatted as PostgreSQL does. */
function independentVerifier(password: string, salt: Uint8Array, iterations: number): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  const b = (x: Uint8Array) => Buffer.from(x).toString("base64");
  return `SCRAM-SHA-256$${iterations}:${b(salt)}$${b(storedKey)}:${b(serverKey)}`;
}

const KEY32 = Buffer.alloc(32, 7).toString("base64");
const KEY31 = Buffer.alloc(31, 7).toString("base64");

Deno.test("createVerifier equals a verifier computed independently with node:crypto", async () => {
  for (const password of ["pencil", "correct horse battery staple", "ünïcødé-pässwörd"]) {
    const v = await createVerifier(password, { iterations: ITERATIONS, salt: SALT });
    assert.equal(formatVerifier(v), independentVerifier(password, SALT, ITERATIONS), password);
  }
});

Deno.test("createVerifier draws a fresh 16-byte salt when none is given", async () => {
  const a = await createVerifier("pencil", { iterations: ITERATIONS });
  const b = await createVerifier("pencil", { iterations: ITERATIONS });
  assert.equal(a.salt.length, SALT_BYTES);
  assert.notDeepEqual(a.salt, b.salt);
  assert.notDeepEqual(a.storedKey, b.storedKey);
  assert.equal(formatVerifier(a), independentVerifier("pencil", a.salt, ITERATIONS));
});

Deno.test("parseVerifier inverts formatVerifier", async () => {
  const v = await createVerifier("pencil", { iterations: ITERATIONS, salt: SALT });
  const text = formatVerifier(v);
  assert.match(text, /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(parseVerifier(text), v);
  assert.equal(formatVerifier(parseVerifier(text)), text);
});

Deno.test("parseVerifier refuses strings that are not SCRAM-SHA-256 verifiers with a TypeError", () => {
  const salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
  const refused = [
    "",
    "md5c4ca4238a0b923820dcc509a6f75849b",
    `SCRAM-SHA-1$4096:${salt}$${KEY32}:${KEY32}`,
    `scram-sha-256$4096:${salt}$${KEY32}:${KEY32}`,
    `SCRAM-SHA-256$4096:${salt}$${KEY32}`,
    `SCRAM-SHA-256$4096$${KEY32}:${KEY32}`,
    `SCRAM-SHA-256$4096:${salt}$${KEY32}:${KEY32} `,
    ` SCRAM-SHA-256$4096:${salt}$${KEY32}:${KEY32}`,
    `SCRAM-SHA-256$4096:${salt}$${KEY32}:${KEY32}\n`,
    `SCRAM-SHA-256$12345678901:${salt}$${KEY32}:${KEY32}`,
    `SCRAM-SHA-256$4096:abc$${KEY32}:${KEY32}`, // salt not canonical base64
    `SCRAM-SHA-256$4096:${salt}$${KEY31}:${KEY32}`, // StoredKey 31 bytes
    `SCRAM-SHA-256$4096:${salt}$${KEY32}:${KEY31}`, // ServerKey 31 bytes
    `SCRAM-SHA-256$4096:${salt}$${KEY32}:${KEY32}:${KEY32}`,
  ];
  for (const text of refused) assert.throws(() => parseVerifier(text), TypeError, JSON.stringify(text));
});

Deno.test("parseVerifier refuses iteration counts outside 4096..10,000,000 with a RangeError", () => {
  const salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
  const text = (i: number) => `SCRAM-SHA-256$${i}:${salt}$${KEY32}:${KEY32}`;
  for (const i of [0, 1000, 4095, 10_000_001, 9_999_999_999]) {
    assert.throws(() => parseVerifier(text(i)), RangeError, String(i));
  }
  assert.equal(parseVerifier(text(MIN_ITERATIONS)).iterations, 4096);
  assert.equal(parseVerifier(text(MAX_ITERATIONS)).iterations, 10_000_000);
});

Deno.test("createVerifier refuses iteration counts outside 4096..10,000,000 with a RangeError", async () => {
  for (const iterations of [4095, 10_000_001, 4096.5, NaN]) {
    await assert.rejects(
      createVerifier("pencil", { iterations, salt: SALT }),
      RangeError,
      String(iterations),
    );
  }
  assert.throws(() => checkIterations(4095), {
    name: "RangeError",
    message: "Iteration count out of range: 4095 is not within 4096..10000000",
  });
  checkIterations(4096);
  checkIterations(10_000_000);
});
