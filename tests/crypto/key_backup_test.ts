import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";
import { exportIdentityPrivate, generateIdentity } from "../../lib/crypto/identity_key.ts";
import {
  checkKeyBackupParams,
  isKeyBackup,
  KEY_BACKUP_DEFAULTS,
  type KeyBackup,
  MAX_KEY_BACKUP_CT,
  openKeyBackup,
  sealKeyBackup,
} from "../../lib/crypto/key_backup.ts";

const identity = await generateIdentity();
const PKCS8 = await exportIdentityPrivate(identity);
const BINDING = { user: "alice", publicKey: identity.publicKey };
const PASSWORD = "correct horse battery staple";
const OPEN_FAILED = {
  name: "TypeError",
  message: "Key backup did not open: wrong password or altered backup",
};
// The cheapest accepted costs, so that the many opens below stay fast; the defaults are tested once.
const CHEAP = { m: 8192, t: 1, p: 1 };
const cheap = await sealKeyBackup(PKCS8, PASSWORD, BINDING, CHEAP);

/** Flip one bit of a base64 field. */
function flip(field: string, byte = 0): string {
  const bytes = decodeBase64(field)!;
  bytes[byte % bytes.length]! ^= 0x01;
  return encodeBase64(bytes);
}

Deno.test("sealKeyBackup with OWASP defaults round-trips through JSON and openKeyBackup", async () => {
  const backup = await sealKeyBackup(PKCS8, PASSWORD, BINDING);
  assert.deepEqual(
    { v: backup.v, kdf: backup.kdf, m: backup.m, t: backup.t, p: backup.p },
    { v: 1, kdf: "argon2id", m: 19456, t: 2, p: 1 },
  );
  assert.deepEqual(KEY_BACKUP_DEFAULTS, { m: 19456, t: 2, p: 1 });
  assert.equal(decodeBase64(backup.salt)?.length, 16);
  assert.equal(decodeBase64(backup.iv)?.length, 12);
  assert.equal(decodeBase64(backup.ct)?.length, PKCS8.length + 16);
  const parsed: unknown = JSON.parse(JSON.stringify(backup));
  assert.ok(isKeyBackup(parsed));
  assert.deepEqual(await openKeyBackup(parsed, PASSWORD, BINDING), PKCS8);
});

Deno.test("sealKeyBackup uses a fresh salt and nonce each time", async () => {
  const again = await sealKeyBackup(PKCS8, PASSWORD, BINDING, CHEAP);
  assert.notEqual(again.salt, cheap.salt);
  assert.notEqual(again.iv, cheap.iv);
  assert.notEqual(again.ct, cheap.ct);
  assert.deepEqual(await openKeyBackup(cheap, PASSWORD, BINDING), PKCS8);
});

Deno.test("openKeyBackup lower-cases the user of the binding", async () => {
  assert.deepEqual(await openKeyBackup(cheap, PASSWORD, { ...BINDING, user: "ALICE" }), PKCS8);
});

Deno.test("openKeyBackup refuses a wrong password with the one TypeError", async () => {
  await assert.rejects(openKeyBackup(cheap, PASSWORD + "!", BINDING), OPEN_FAILED);
  await assert.rejects(openKeyBackup(cheap, "Correct horse battery staple", BINDING), OPEN_FAILED);
  await assert.rejects(openKeyBackup(cheap, "", BINDING), OPEN_FAILED);
});

Deno.test("openKeyBackup refuses an altered salt, nonce, ciphertext or cost with the one TypeError", async () => {
  const altered: KeyBackup[] = [
    { ...cheap, salt: flip(cheap.salt) },
    { ...cheap, iv: flip(cheap.iv, 11) },
    { ...cheap, ct: flip(cheap.ct) },
    { ...cheap, ct: flip(cheap.ct, 63) },
    { ...cheap, t: 2 },
    { ...cheap, m: 8193 },
  ];
  for (const backup of altered) {
    await assert.rejects(openKeyBackup(backup, PASSWORD, BINDING), OPEN_FAILED);
  }
});

Deno.test("openKeyBackup refuses a backup bound to another user or public key", async () => {
  await assert.rejects(openKeyBackup(cheap, PASSWORD, { ...BINDING, user: "mallory" }), OPEN_FAILED);
  const other = new Uint8Array(identity.publicKey);
  other[31]! ^= 0x80;
  await assert.rejects(openKeyBackup(cheap, PASSWORD, { ...BINDING, publicKey: other }), OPEN_FAILED);
});

Deno.test("checkKeyBackupParams accepts the bounds and throws RangeError outside them", () => {
  checkKeyBackupParams({ m: 8192, t: 1, p: 1 });
  checkKeyBackupParams({ m: 262144, t: 10, p: 4 });
  const outside = [
    { m: 8191, t: 2, p: 1 },
    { m: 262145, t: 2, p: 1 },
    { m: 19456, t: 0, p: 1 },
    { m: 19456, t: 11, p: 1 },
    { m: 19456, t: 2, p: 0 },
    { m: 19456, t: 2, p: 5 },
    { m: 19456.5, t: 2, p: 1 },
    { m: 19456, t: NaN, p: 1 },
  ];
  for (const params of outside) {
    assert.throws(() => checkKeyBackupParams(params), RangeError, JSON.stringify(params));
  }
});

Deno.test("openKeyBackup throws RangeError for costs a server must not impose, before deriving", async () => {
  // 2^40 KiB would exhaust memory if it reached Argon2id.
  for (const costs of [{ m: 2 ** 40 }, { t: 1_000_000 }, { p: 64 }, { m: 1024 }]) {
    await assert.rejects(openKeyBackup({ ...cheap, ...costs }, PASSWORD, BINDING), RangeError);
  }
});

Deno.test("sealKeyBackup throws RangeError for bad costs, an empty password or an oversized key", async () => {
  await assert.rejects(sealKeyBackup(PKCS8, PASSWORD, BINDING, { m: 4096, t: 2, p: 1 }), RangeError);
  await assert.rejects(sealKeyBackup(PKCS8, "", BINDING, CHEAP), RangeError);
  const limit = MAX_KEY_BACKUP_CT - 16;
  await assert.rejects(sealKeyBackup(new Uint8Array(limit + 1), PASSWORD, BINDING, CHEAP), RangeError);
  const largest = await sealKeyBackup(new Uint8Array(limit), PASSWORD, BINDING, CHEAP);
  assert.ok(isKeyBackup(largest));
  assert.equal((await openKeyBackup(largest, PASSWORD, BINDING)).length, limit);
});

Deno.test("isKeyBackup refuses every malformed shape and openKeyBackup throws TypeError for them", async () => {
  const b64 = (n: number) => encodeBase64(new Uint8Array(n));
  const { ct: _ct, ...missing } = cheap;
  const bad: unknown[] = [
    null,
    undefined,
    "backup",
    [cheap],
    missing,
    { ...cheap, extra: 1 },
    { ...cheap, v: 2 },
    { ...cheap, v: "1" },
    { ...cheap, kdf: "argon2i" },
    { ...cheap, m: "8192" },
    { ...cheap, t: 1.5 },
    { ...cheap, p: null },
    { ...cheap, salt: b64(15) },
    { ...cheap, salt: b64(17) },
    { ...cheap, iv: b64(16) },
    { ...cheap, ct: b64(15) },
    { ...cheap, ct: b64(MAX_KEY_BACKUP_CT + 1) },
    { ...cheap, ct: "A".repeat(1_000_000) },
    { ...cheap, ct: cheap.ct.slice(0, -1) },
    { ...cheap, salt: cheap.salt.replace(/=*$/, "") },
    { ...cheap, iv: ` ${cheap.iv}` },
    { ...cheap, ct: 42 },
  ];
  for (const value of bad) {
    assert.equal(isKeyBackup(value), false, JSON.stringify(value)?.slice(0, 80));
    await assert.rejects(openKeyBackup(value as KeyBackup, PASSWORD, BINDING), {
      name: "TypeError",
      message: "Invalid key backup: malformed fields",
    });
  }
  assert.equal(isKeyBackup({ ...cheap, ct: b64(MAX_KEY_BACKUP_CT) }), true);
  assert.equal(isKeyBackup({ ...cheap, ct: b64(16) }), true);
});

Deno.test("isKeyBackup never throws on arbitrary values (property)", () => {
  fc.assert(
    fc.property(fc.anything(), (value) => {
      assert.equal(typeof isKeyBackup(value), "boolean");
    }),
  );
  fc.assert(
    fc.property(
      fc.record({ v: fc.anything(), kdf: fc.anything(), m: fc.anything(), salt: fc.string() }),
      (fields) => {
        assert.equal(
          isKeyBackup({ ...cheap, ...fields }),
          fields.v === 1 && fields.kdf === "argon2id" &&
            Number.isSafeInteger(fields.m) && decodeBase64(fields.salt)?.length === 16,
        );
      },
    ),
  );
});
